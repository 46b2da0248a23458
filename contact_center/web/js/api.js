// The REST API as the pages use it: JSON in and out, the session's CSRF token on unsafe
// requests, one error type carrying the API's {"error": {status, code, message, fields}}.

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || {};
  }
}

let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function request(method, path, { body, query } = {}) {
  const headers = { Accept: "application/json" };
  const options = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD"].includes(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(withQuery(path, query), options);
  } catch {
    throw new ApiError(0, "offline", "The service cannot be reached right now.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error;
    if (response.status === 401 && path !== "/api/v1/auth/login") {
      window.dispatchEvent(new CustomEvent("session-expired"));
    }
    if (error && typeof error === "object") {
      throw new ApiError(response.status, error.code, error.message, error.fields);
    }
    const message = typeof error === "string" ? error : response.statusText || "request failed";
    throw new ApiError(response.status, `http_${response.status}`, message);
  }
  return data;
}

const v1 = (path) => `/api/v1${path}`;

export const api = {
  get: (path, query) => request("GET", v1(path), { query }),
  post: (path, body = {}) => request("POST", v1(path), { body }),
  put: (path, body = {}) => request("PUT", v1(path), { body }),
  patch: (path, body = {}) => request("PATCH", v1(path), { body }),
  raw: request,
};

let openapi = null;

/** The service's OpenAPI document (read once): pages look up optional endpoints in it. */
export async function apiDocument() {
  if (!openapi) openapi = request("GET", "/api/openapi.json").catch(() => ({ paths: {} }));
  return openapi;
}

/**
 * The POST endpoint that sends a reply on `channel` for a ticket, when the service has one
 * (e.g. /api/v1/tickets/{id}/email or .../replies/sms), with the name of its text field.
 */
export async function replyEndpoint(channel) {
  const doc = await apiDocument();
  const candidates = Object.entries(doc.paths || {}).filter(
    ([path, ops]) => ops.post && path.startsWith("/api/v1/tickets/{id}/") && path.includes(channel),
  );
  if (!candidates.length) return null;
  const [path, ops] = candidates[0];
  const ref = ops.post.requestBody?.content?.["application/json"]?.schema?.$ref;
  const schema = ref ? doc.components?.schemas?.[ref.split("/").pop()] : null;
  const props = Object.keys(schema?.properties || {});
  const field = ["body", "text", "message", "content"].find((name) => props.includes(name)) || "body";
  return { path, field, summary: ops.post.summary || "" };
}
