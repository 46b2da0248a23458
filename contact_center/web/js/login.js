// The sign-in page: POST /api/v1/auth/login sets the session cookie; then on to where we were going.

import { api } from "./api.js";
import { byId } from "./dom.js";
import { sameSitePath } from "./paths.js";

const DEFAULT_PAGE = "/console";

function destination() {
  const next = new URLSearchParams(location.search).get("next");
  return (next && sameSitePath(next)) || DEFAULT_PAGE;
}

byId("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = byId("login-error");
  const login = byId("login").value.trim();
  const password = byId("password").value;
  error.hidden = true;
  if (!login || !password) {
    error.textContent = "Enter your login and password.";
    error.hidden = false;
    return;
  }
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    await api.post("/auth/login", { login, password });
    location.assign(destination());
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    byId("password").select();
  } finally {
    if (button) button.disabled = false;
  }
});
