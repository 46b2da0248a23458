// Building the page from data: every value goes in as text (textContent / attributes), never as
// HTML, so whatever a customer typed is shown, not run.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const byId = (id) => document.getElementById(id);

const SVG = "http://www.w3.org/2000/svg";
// Outline icons after Feather (MIT licence).
const ICONS = {
  voice:
    "M22 16.92v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.5 19.5 0 0 1-6-6 19.79 19.79 0 0 1-3.07-8.67A2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72 12.84 12.84 0 0 0 .7 2.81 2 2 0 0 1-.45 2.11L8.09 9.91a16 16 0 0 0 6 6l1.27-1.27a2 2 0 0 1 2.11-.45 12.84 12.84 0 0 0 2.81.7A2 2 0 0 1 22 16.92z",
  email: "M4 4h16a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zM22 6l-10 7L2 6",
  sms: "M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z",
  chat: "M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z",
  note: "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zM14 2v6h6M16 13H8M16 17H8",
};
export const CHANNEL_NAMES = { voice: "Call", email: "Email", sms: "SMS", chat: "Chat", note: "Note" };

export function channelIcon(channel) {
  const name = CHANNEL_NAMES[channel] || channel;
  const wrap = h("span", { class: `channel channel-${channel}`, title: name });
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[channel] || ICONS.note);
  svg.append(path);
  wrap.append(svg, h("span", { class: "visually-hidden", text: name }));
  return wrap;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Infinity, "year"],
];

export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "";
  let amount = (new Date(iso).getTime() - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return "";
}

/** A <time> element showing a relative time, the exact time in its title; kept fresh by tick(). */
export function timeAgo(iso) {
  const el = h("time", { datetime: iso, class: "ago", title: iso ? new Date(iso).toLocaleString() : "" });
  el.textContent = relativeTime(iso);
  return el;
}

export function refreshTimes(root = document) {
  for (const el of root.querySelectorAll("time.ago")) el.textContent = relativeTime(el.getAttribute("datetime"));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

export function dateTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** Show a short message in the page's status region (read out by screen readers). */
export function notify(message, kind = "info") {
  const region = byId("notice");
  if (!region) return;
  region.className = `notice notice-${kind}`;
  region.textContent = message;
  region.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => {
    region.hidden = true;
  }, 6000);
}

export function errorText(error) {
  const fields = Object.entries(error.fields || {}).map(([k, v]) => `${k}: ${v}`);
  return fields.length ? `${error.message} (${fields.join("; ")})` : error.message;
}

/** A refusal or failure shown in place of a page's content. */
export function refusal(error, what) {
  const title =
    error.status === 404 || error.status === 403
      ? `You cannot open this ${what}`
      : `This ${what} could not be loaded`;
  const why =
    error.status === 404
      ? `It does not exist, or it is not visible to you (${error.message}).`
      : error.status === 403
        ? `You are not allowed to see it (${error.message}).`
        : error.message;
  return h(
    "section",
    { class: "refusal", role: "alert", "data-status": error.status },
    h("h1", { text: title }),
    h("p", { text: why }),
    h("p", {}, h("a", { href: "/console", text: "Back to the console" })),
  );
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${String(kind).replace(/[^a-z0-9-]/gi, "-")}`, text });
}

/** Whether a key press is meant for a text field rather than a page shortcut. */
export function typing(event) {
  const el = event.target;
  return (
    event.ctrlKey ||
    event.metaKey ||
    event.altKey ||
    (el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)))
  );
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
