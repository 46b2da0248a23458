// One ticket: the whole conversation across channels in order, internal notes, status, priority
// and assignment changes, and a reply box for the ticket's channel when the API offers one.
// Outbound emails and texts show their delivery state, kept live by "email.delivery" and
// "sms.status" frames on the agent socket.

import { api, replyEndpoint } from "./api.js";
import { badge, byId, channelIcon, CHANNEL_NAMES, dateTime, debounce, errorText, h, notify, refusal, replace, timeAgo, typing } from "./dom.js";
import { halt, startPage } from "./shell.js";
import { openNextTicket } from "./work.js";

const STATUSES = ["new", "open", "pending", "resolved", "closed"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
const ticketId = Number(location.pathname.split("/").pop());
const { me, socket } = await startPage("/tickets");
const main = byId("main");
let ticket;
let agents = [];

try {
  ticket = await api.get(`/tickets/${ticketId}`);
} catch (error) {
  main.removeAttribute("aria-busy");
  replace(main, refusal(error, "ticket"));
  document.title = "Not available · contact-center";
  await halt();
}
if (me.role !== "agent") agents = (await api.get("/agents").catch(() => ({ items: [] }))).items.filter((a) => a.active);

const agentName = (id) => (id === me.id ? `${me.display_name} (me)` : agents.find((a) => a.id === id)?.display_name || `agent #${id}`);

async function change(operation, done) {
  try {
    ticket = await operation();
    notify(done);
    await render();
  } catch (error) {
    notify(errorText(error), "error");
    await render();
  }
}

function select(id, label, options, current, onChange) {
  const el = h("select", { id }, options.map(([value, text]) => h("option", { value, text, selected: String(value) === String(current) })));
  el.addEventListener("change", () => onChange(el.value));
  return [h("label", { for: id, text: label }), el];
}

function controls() {
  const assignees = [["", "Unassigned"], [me.id, `${me.display_name} (me)`], ...agents.filter((a) => a.id !== me.id).map((a) => [a.id, a.display_name])];
  if (ticket.assignee_id && !assignees.some(([id]) => id === ticket.assignee_id)) assignees.push([ticket.assignee_id, agentName(ticket.assignee_id)]);
  return h(
    "section",
    { class: "panel", "aria-labelledby": "controls-title" },
    h("h2", { id: "controls-title", text: "Ticket" }),
    select("ticket-status", "Status", STATUSES.map((s) => [s, s]), ticket.status, (status) =>
      change(() => api.post(`/tickets/${ticketId}/transition`, { status }), `Status: ${status}.`),
    ),
    select("ticket-priority", "Priority", PRIORITIES.map((p) => [p, p]), ticket.priority, (priority) =>
      change(() => api.patch(`/tickets/${ticketId}`, { priority }), `Priority: ${priority}.`),
    ),
    select("ticket-assignee", "Assignee", assignees, ticket.assignee_id ?? "", (value) =>
      change(() => api.post(`/tickets/${ticketId}/assign`, { assignee_id: value ? Number(value) : null }), "Assignment changed."),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", { text: "Opened" }),
      h("dd", { text: dateTime(ticket.created_at) }),
      h("dt", { text: "First response due" }),
      h("dd", { text: ticket.first_responded_at ? `answered ${dateTime(ticket.first_responded_at)}` : dateTime(ticket.first_response_due_at) || "–" }),
      h("dt", { text: "Resolution due" }),
      h("dd", { text: dateTime(ticket.resolution_due_at) || "–" }),
      ticket.category ? [h("dt", { text: "Category" }), h("dd", { text: ticket.category })] : null,
    ),
    h("p", {}, h("button", { type: "button", class: "link", text: "Next ticket (N)", onclick: nextTicket })),
  );
}

const DELIVERED_BY = new Set(["email", "sms"]);

/** The delivery state of an outbound email or text (queued, sent, delivered, failed, bounced). */
function deliveryBadge(status, error) {
  const el = badge(status);
  el.classList.add("delivery");
  el.dataset.delivery = status;
  el.setAttribute("aria-label", `Delivery: ${status}`);
  if (error) el.title = error;
  return el;
}

function showDelivery(interactionId, status, error) {
  const old = main.querySelector(`[data-interaction="${Number(interactionId)}"] .delivery`);
  if (old) old.replaceWith(deliveryBadge(status, error));
}

function conversationItem(entry) {
  if (entry.kind === "comment") {
    const c = entry.item;
    return h(
      "li",
      { class: c.internal ? "internal" : "comment", dataset: { comment: c.id } },
      channelIcon("note"),
      h(
        "div",
        { class: "body" },
        h("div", { class: "meta-line" }, h("strong", { text: c.internal ? "Internal note" : "Comment" }), h("span", { text: c.author_id ? agentName(c.author_id) : "system" }), timeAgo(c.created_at)),
        h("p", { class: "text", text: c.body }),
      ),
    );
  }
  const i = entry.item;
  const title = i.subject || `${i.direction} ${CHANNEL_NAMES[i.channel] || i.channel}`;
  return h(
    "li",
    { class: `interaction-${i.direction}`, dataset: { interaction: i.id, channel: i.channel } },
    channelIcon(i.channel),
    h(
      "div",
      { class: "body" },
      h("div", { class: "meta-line" }, h("strong", { text: title }), i.direction === "outbound" && DELIVERED_BY.has(i.channel) ? deliveryBadge(i.status) : badge(i.status), i.metadata?.disposition ? badge(i.metadata.disposition, "disposition") : null, timeAgo(i.started_at)),
      i.body ? h("p", { class: "text", text: i.body }) : null,
      i.summary ? h("p", { class: "text summary", text: i.summary }) : null,
    ),
  );
}

async function conversation() {
  const [interactions, comments] = await Promise.all([
    api.get("/interactions", { ticket_id: ticketId, limit: 200 }),
    api.get(`/tickets/${ticketId}/comments`),
  ]);
  const entries = [
    ...interactions.items.map((item) => ({ kind: "interaction", at: item.started_at, item })),
    ...comments.items.map((item) => ({ kind: "comment", at: item.created_at, item })),
  ].sort((a, b) => new Date(a.at) - new Date(b.at));
  return h(
    "section",
    { class: "panel", "aria-labelledby": "conversation-title" },
    h("h2", { id: "conversation-title", text: "Conversation" }),
    entries.length ? h("ol", { class: "conversation", id: "conversation" }, entries.map(conversationItem)) : h("p", { class: "empty", text: "Nothing yet." }),
  );
}

async function replyBox() {
  const channel = ticket.source_channel;
  const endpoint = channel && channel !== "voice" ? await replyEndpoint(channel) : null;
  if (!endpoint) {
    const why =
      channel === "voice"
        ? "Call the customer back; record the outcome on the call."
        : channel
          ? `Replies by ${CHANNEL_NAMES[channel] || channel} are not available on this service.`
          : "This ticket was opened by hand: it has no channel to reply on.";
    return h("section", { class: "panel", "aria-labelledby": "reply-title" }, h("h2", { id: "reply-title", text: "Reply" }), h("p", { class: "muted", text: why }));
  }
  const text = h("textarea", { id: "reply-text", rows: 5, required: true, maxlength: 20000 });
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "reply-title" },
    h("h2", { id: "reply-title" }, "Reply by ", CHANNEL_NAMES[channel] || channel),
    h("label", { for: "reply-text", text: "Message to the customer" }),
    text,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: "Send reply" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.raw("POST", endpoint.path.replace("{id}", ticketId), { body: { [endpoint.field]: text.value } });
      text.value = "";
      notify("Reply sent.");
      await render();
    } catch (error) {
      notify(errorText(error), "error");
    }
  });
  return form;
}

function noteForm() {
  const text = h("textarea", { id: "note-text", rows: 3, required: true, maxlength: 20000 });
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "note-title" },
    h("h2", { id: "note-title", text: "Internal note" }),
    h("label", { for: "note-text", text: "Visible to agents only" }),
    text,
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Add note" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post(`/tickets/${ticketId}/comments`, { body: text.value, internal: true });
      notify("Note added.");
      await render();
    } catch (error) {
      notify(errorText(error), "error");
    }
  });
  return form;
}

async function render() {
  document.title = `#${ticket.number} ${ticket.subject} · contact-center`;
  const customer = await api.get(`/customers/${ticket.customer_id}`).catch(() => null);
  const [talk, reply] = await Promise.all([conversation(), replyBox()]);
  replace(
    main,
    h(
      "header",
      {},
      h("h1", { id: "ticket-title", text: `#${ticket.number} ${ticket.subject}` }),
      h(
        "p",
        { class: "meta-line" },
        badge(ticket.status),
        badge(ticket.priority),
        ticket.source_channel ? channelIcon(ticket.source_channel) : null,
        customer ? h("a", { href: `/customers/${customer.id}`, text: customer.display_name }) : h("span", { text: `customer #${ticket.customer_id}` }),
        h("span", { class: "muted", text: ticket.assignee_id ? `assigned to ${agentName(ticket.assignee_id)}` : "unassigned" }),
      ),
    ),
    h("div", { class: "columns" }, h("div", {}, talk, reply, noteForm()), h("div", {}, controls())),
  );
  main.removeAttribute("aria-busy");
  document.body.dataset.ready = "true";
}

function nextTicket() {
  openNextTicket(ticketId).then((found) => found || notify("No other open tickets assigned to you."));
}

document.addEventListener("keydown", (event) => {
  if (typing(event) || event.key.toLowerCase() !== "n") return;
  event.preventDefault();
  nextTicket();
});
const refresh = debounce(async () => {
  try {
    ticket = await api.get(`/tickets/${ticketId}`);
    await render();
  } catch {
    /* keep what is shown */
  }
}, 400);
socket.on("ticket.updated", (frame) => frame.ticket_id === ticketId && refresh());
socket.on("email.delivery", (frame) => {
  if (frame.ticket_id !== ticketId) return;
  showDelivery(frame.interaction_id, frame.status, frame.error);
  refresh();
});
socket.on("sms.status", (frame) => frame.ticket_id === ticketId && refresh());
socket.on("reconnected", refresh);
socket.start();
await render();
