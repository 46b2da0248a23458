// The ticket inbox: mine, my team's, unassigned, with status/priority/channel filters and search.
// The view lives in the address (?view=&q=...), so a reload or a shared link shows the same list.

import { api } from "./api.js";
import { badge, byId, channelIcon, debounce, errorText, h, notify, replace, timeAgo, typing } from "./dom.js";
import { startPage } from "./shell.js";
import { ACTIVE_STATUSES, openNextTicket } from "./work.js";

const PAGE = 25;
const { me, socket } = await startPage("/tickets");
const form = byId("ticket-filters");
const params = new URLSearchParams(location.search);
let view = params.get("view") || "mine";
let offset = Number(params.get("offset") || 0);
for (const name of ["q", "status", "priority", "channel"]) {
  if (params.has(name)) form.elements[name].value = params.get(name);
}

function query() {
  const data = new FormData(form);
  const q = { limit: PAGE, offset };
  const status = data.get("status");
  q.status = status === "active" ? ACTIVE_STATUSES : status || undefined;
  for (const name of ["q", "priority", "channel"]) q[name] = data.get(name) || undefined;
  if (view === "mine") q.mine = true;
  else if (view === "unassigned") q.unassigned = true;
  else if (view === "team") {
    if (me.team_id) q.team_id = me.team_id;
    else q.mine = true;
  }
  return q;
}

function dueCell(t) {
  const due = t.first_responded_at ? t.resolution_due_at : t.first_response_due_at;
  if (!due || !ACTIVE_STATUSES.includes(t.status)) return h("td", {});
  const late = new Date(due) < new Date();
  return h("td", {}, late ? badge("breached") : null, " ", timeAgo(due));
}

async function load() {
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  const q = query();
  const address = new URLSearchParams({ view, ...Object.fromEntries(new FormData(form)) });
  if (offset) address.set("offset", offset);
  history.replaceState(null, "", `/tickets?${address}`);
  try {
    const page = await api.get("/tickets", q);
    replace(
      byId("ticket-rows"),
      page.items.length
        ? page.items.map((t) =>
            h(
              "tr",
              { dataset: { ticket: t.id } },
              h("td", { text: t.number }),
              h("td", {}, h("a", { href: `/tickets/${t.id}`, text: t.subject })),
              h("td", {}, badge(t.status)),
              h("td", {}, badge(t.priority)),
              h("td", {}, t.source_channel ? channelIcon(t.source_channel) : ""),
              dueCell(t),
              h("td", {}, timeAgo(t.updated_at)),
            ),
          )
        : h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No tickets match." })),
    );
    byId("result-count").textContent = `${page.total} ticket${page.total === 1 ? "" : "s"}`;
    byId("prev-page").disabled = offset === 0;
    byId("next-page").disabled = offset + page.items.length >= page.total;
  } catch (error) {
    notify(errorText(error), "error");
  }
}

for (const button of document.querySelectorAll(".tabs button")) {
  button.addEventListener("click", () => {
    view = button.dataset.view;
    offset = 0;
    load();
  });
}
form.addEventListener("submit", (event) => {
  event.preventDefault();
  offset = 0;
  load();
});
form.addEventListener("change", () => {
  offset = 0;
  load();
});
byId("filter-q").addEventListener("input", debounce(() => ((offset = 0), load()), 350));
byId("prev-page").addEventListener("click", () => ((offset = Math.max(0, offset - PAGE)), load()));
byId("next-page").addEventListener("click", () => ((offset += PAGE), load()));
document.addEventListener("keydown", (event) => {
  if (typing(event)) return;
  if (event.key === "/") byId("filter-q").focus();
  else if (event.key.toLowerCase() === "n") openNextTicket().then((found) => found || notify("No open tickets assigned to you."));
  else return;
  event.preventDefault();
});

const reload = debounce(load, 400);
socket.on("ticket.opened", reload);
socket.on("ticket.updated", reload);
socket.on("sms.received", reload);
socket.on("reconnected", reload);
socket.start();
setInterval(reload, 30000);
await load();
document.body.dataset.ready = "true";
