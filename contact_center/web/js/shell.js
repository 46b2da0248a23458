// What every signed-in page shares: the session (or a trip to the login page), the header with
// navigation and sign-out, the live socket with its offline banner, and the status region.

import { api, setCsrfToken } from "./api.js";
import { byId, h, refreshTimes, replace } from "./dom.js";
import { LiveSocket } from "./socket.js";

const NAV = [
  { href: "/console", label: "Console", roles: null },
  { href: "/tickets", label: "Tickets", roles: null },
  { href: "/campaigns", label: "Campaigns", roles: null },
  { href: "/wallboard", label: "Wallboard", roles: ["supervisor", "admin"] },
];

function toLogin() {
  const next = location.pathname + location.search;
  location.replace(`/login?next=${encodeURIComponent(next)}`);
}

async function signOut() {
  try {
    await api.post("/auth/logout");
  } finally {
    location.assign("/login");
  }
}

function header(me, current) {
  const links = NAV.filter((item) => !item.roles || item.roles.includes(me.role)).map((item) =>
    h(
      "li",
      {},
      h("a", {
        href: item.href,
        text: item.label,
        "aria-current": current === item.href ? "page" : null,
      }),
    ),
  );
  return [
    h("a", { class: "brand", href: "/console", text: "contact-center" }),
    h("nav", { "aria-label": "Main" }, h("ul", {}, links)),
    h(
      "div",
      { class: "who" },
      h("span", { id: "connection", class: "connection", role: "status", "aria-live": "polite" }),
      h("span", { class: "me", text: `${me.display_name} (${me.role})` }),
      h("button", { type: "button", class: "link", onclick: signOut, text: "Sign out" }),
    ),
  ];
}

function showConnection(socket, { online, retryAt, connectedBefore }) {
  const banner = byId("offline-banner");
  const badge = byId("connection");
  if (badge) {
    badge.textContent = online ? "Live" : "Offline";
    badge.className = `connection ${online ? "online" : "offline"}`;
  }
  if (!banner) return;
  if (online || !connectedBefore) {
    // Before the first connection there is nothing stale to warn about.
    banner.hidden = online || !retryAt;
  } else {
    banner.hidden = false;
  }
  if (!banner.hidden) {
    const seconds = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
    replace(
      banner,
      h("strong", { text: "Offline." }),
      ` Live updates are paused; reconnecting${seconds ? ` in ${seconds} s` : ""}… `,
      h("button", { type: "button", class: "link", onclick: () => socket.retryNow(), text: "Retry now" }),
    );
  }
}

/** Stop a page's script here, leaving what it shows (a refusal, say) in place. */
export function halt() {
  return new Promise(() => {});
}

/**
 * Start a signed-in page: returns {me, socket}. Without a session the browser goes to /login.
 * The page starts the socket (socket.start()) once its listeners are in place.
 */
export async function startPage(current, { live = true } = {}) {
  window.addEventListener("session-expired", toLogin);
  let session;
  try {
    session = await api.get("/auth/me");
  } catch (error) {
    if (error.status === 401) {
      toLogin();
      return halt();
    }
    throw error;
  }
  setCsrfToken(session.csrf_token);
  const me = session.agent;
  replace(byId("app-header"), header(me, current));
  document.body.dataset.role = me.role;
  let socket = null;
  if (live) {
    socket = new LiveSocket();
    socket.on("status", (status) => showConnection(socket, status));
    setInterval(() => {
      if (!socket.online && socket.everConnected) showConnection(socket, { online: false, retryAt: socket.retryAt, connectedBefore: true });
    }, 1000);
  }
  setInterval(() => refreshTimes(), 15000);
  return { me, socket };
}
