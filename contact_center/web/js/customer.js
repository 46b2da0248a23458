// Customer 360: the editable profile, contact points, the timeline across channels with filters,
// tickets, and merge suggestions from duplicate detection.

import { api } from "./api.js";
import { badge, byId, channelIcon, CHANNEL_NAMES, dateTime, debounce, errorText, h, notify, refusal, replace, timeAgo } from "./dom.js";
import { halt, startPage } from "./shell.js";

const PAGE = 25;
const customerId = Number(location.pathname.split("/").pop());
const { me, socket } = await startPage("");
const main = byId("main");
let customer;
let agents = [];

try {
  customer = await api.get(`/customers/${customerId}`);
} catch (error) {
  main.removeAttribute("aria-busy");
  replace(main, refusal(error, "customer"));
  document.title = "Not available · contact-center";
  await halt();
}
if (me.role !== "agent") {
  agents = (await api.get("/agents").catch(() => ({ items: [] }))).items.filter((a) => a.active);
}

function field(id, label, value, attrs = {}) {
  return [h("label", { for: id, text: label }), h("input", { id, name: id.replace("profile-", ""), value: value ?? "", ...attrs })];
}

function ownerLine() {
  const owner = customer.owner_id
    ? agents.find((a) => a.id === customer.owner_id)?.display_name || (customer.owner_id === me.id ? me.display_name : `agent #${customer.owner_id}`)
    : null;
  const parts = [h("span", { class: "owner", text: owner ? `Owner: ${owner}` : "In the shared pool (no owner)" })];
  if (!customer.owner_id) {
    parts.push(" ", h("button", { type: "button", id: "claim", text: "Claim", onclick: () => act(() => api.post(`/customers/${customerId}/claim`), "Claimed.") }));
  }
  if (agents.length) {
    const select = h(
      "select",
      { id: "owner-select", "aria-label": "Assign owner" },
      h("option", { value: "", text: "Assign to…" }),
      agents.map((a) => h("option", { value: a.id, text: a.display_name, selected: a.id === customer.owner_id })),
    );
    select.addEventListener("change", () => select.value && act(() => api.patch(`/customers/${customerId}`, { owner_id: Number(select.value) }), "Owner changed."));
    parts.push(" ", select);
  }
  return h("p", { class: "meta-line" }, parts);
}

async function act(operation, done) {
  try {
    const updated = await operation();
    if (updated && updated.id === customerId) customer = updated;
    notify(done);
    render();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function profileForm() {
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title", text: "Profile" }),
    field("profile-display_name", "Name", customer.display_name, { required: true, maxlength: 200 }),
    field("profile-company", "Company", customer.company, { maxlength: 200 }),
    field("profile-tags", "Tags (comma separated)", customer.tags.join(", ")),
    field("profile-segment", "Segment", customer.segment, { maxlength: 100 }),
    field("profile-timezone", "Time zone", customer.timezone, { maxlength: 64, placeholder: "Europe/Paris" }),
    field("profile-preferred_language", "Preferred language", customer.preferred_language, { maxlength: 16 }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: "Save profile" })),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const text = (name) => String(data.get(name) || "").trim() || null;
    const body = {
      display_name: text("display_name") || customer.display_name,
      company: text("company"),
      tags: String(data.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean),
      segment: text("segment"),
      timezone: text("timezone"),
      preferred_language: text("preferred_language"),
    };
    act(() => api.patch(`/customers/${customerId}`, body), "Profile saved.");
  });
  return form;
}

function contactPoints() {
  const phone = h("input", { id: "add-phone", type: "tel", maxlength: 40, "aria-label": "Phone number to add" });
  const email = h("input", { id: "add-email", type: "email", maxlength: 320, "aria-label": "Email address to add" });
  const remove = (kind, value) =>
    h("button", {
      type: "button",
      class: "link",
      "aria-label": `Remove ${value}`,
      text: "Remove",
      onclick: () => act(() => api.patch(`/customers/${customerId}`, { [`remove_${kind}`]: [value] }), "Removed."),
    });
  const form = h(
    "form",
    { class: "actions" },
    phone,
    h("button", { type: "submit", name: "phone", text: "Add phone" }),
    email,
    h("button", { type: "submit", name: "email", text: "Add email" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {};
    if (phone.value.trim()) body.add_phones = [phone.value.trim()];
    if (email.value.trim()) body.add_emails = [email.value.trim()];
    if (Object.keys(body).length) act(() => api.patch(`/customers/${customerId}`, body), "Contact point added.");
  });
  return h(
    "section",
    { class: "panel", "aria-labelledby": "cp-title" },
    h("h2", { id: "cp-title", text: "Contact points" }),
    h(
      "ul",
      { class: "contact-points" },
      customer.phones.map((p) => h("li", {}, channelIcon("voice"), h("span", { text: p.e164 }), remove("phones", p.e164))),
      customer.emails.map((e) => h("li", {}, channelIcon("email"), h("span", { text: e.address }), remove("emails", e.address))),
    ),
    form,
  );
}

// --- timeline ------------------------------------------------------------------------------

const timelineState = { channels: new Set(), offset: 0 };

function timelineItem(item) {
  const title = item.subject || `${item.direction} ${CHANNEL_NAMES[item.channel] || item.channel}`;
  const disposition = item.metadata && item.metadata.disposition;
  return h(
    "li",
    { dataset: { interaction: item.id, channel: item.channel } },
    channelIcon(item.channel),
    h(
      "div",
      { class: "body" },
      h(
        "div",
        { class: "meta-line" },
        h("strong", { text: title }),
        badge(item.status),
        disposition ? badge(disposition, "disposition") : null,
        item.duration_seconds ? h("span", { class: "muted", text: `${item.duration_seconds} s` }) : null,
        item.ticket_id ? h("a", { href: `/tickets/${item.ticket_id}`, text: "ticket" }) : null,
        timeAgo(item.started_at),
      ),
      item.summary ? h("p", { class: "text summary", text: item.summary }) : null,
      item.body && !item.summary ? h("p", { class: "text", text: item.body.slice(0, 400) }) : null,
    ),
  );
}

async function loadTimeline(reset = true) {
  if (reset) timelineState.offset = 0;
  const list = byId("timeline-list");
  const page = await api.get(`/customers/${customerId}/timeline`, {
    channel: [...timelineState.channels],
    limit: PAGE,
    offset: timelineState.offset,
  });
  if (reset) list.replaceChildren();
  list.append(...page.items.map(timelineItem));
  if (!page.total) list.append(h("li", { class: "empty", text: "No interactions." }));
  timelineState.offset += page.items.length;
  byId("timeline-more").hidden = timelineState.offset >= page.total;
  byId("timeline-count").textContent = `${page.total} in all`;
}

function timelineSection() {
  const filters = h(
    "fieldset",
    { class: "segmented" },
    h("legend", { text: "Channels" }),
    ["voice", "email", "sms", "chat"].map((channel) => {
      const box = h("input", { type: "checkbox", id: `timeline-channel-${channel}`, value: channel, checked: timelineState.channels.has(channel) });
      box.addEventListener("change", () => {
        box.checked ? timelineState.channels.add(channel) : timelineState.channels.delete(channel);
        loadTimeline();
      });
      return h("label", {}, box, " ", CHANNEL_NAMES[channel]);
    }),
  );
  return h(
    "section",
    { class: "panel", "aria-labelledby": "timeline-title" },
    h("h2", { id: "timeline-title" }, "Timeline ", h("span", { id: "timeline-count", class: "muted" })),
    filters,
    h("ol", { id: "timeline-list", class: "timeline", "aria-live": "polite" }),
    h("button", { type: "button", id: "timeline-more", hidden: true, text: "Show more", onclick: () => loadTimeline(false) }),
  );
}

// --- tickets and duplicates ----------------------------------------------------------------

async function ticketsSection() {
  const page = await api.get("/tickets", { customer_id: customerId, limit: 50 });
  const subject = h("input", { id: "new-ticket-subject", maxlength: 300, required: true });
  const form = h(
    "form",
    { class: "actions" },
    h("label", { for: "new-ticket-subject", class: "visually-hidden", text: "Subject of a new ticket" }),
    subject,
    h("button", { type: "submit", text: "Open a ticket" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const ticket = await api.post("/tickets", { customer_id: customerId, subject: subject.value });
      location.assign(`/tickets/${ticket.id}`);
    } catch (error) {
      notify(errorText(error), "error");
    }
  });
  return h(
    "section",
    { class: "panel", "aria-labelledby": "tickets-title" },
    h("h2", { id: "tickets-title", text: `Tickets (${page.total})` }),
    h(
      "ul",
      { class: "ticket-list" },
      page.items.map((t) =>
        h("li", {}, h("a", { href: `/tickets/${t.id}`, text: `#${t.number} ${t.subject}` }), " ", badge(t.status), " ", badge(t.priority), " ", timeAgo(t.updated_at)),
      ),
    ),
    form,
  );
}

async function duplicatesSection() {
  const found = (await api.get(`/customers/${customerId}/duplicates`)).items;
  return h(
    "section",
    { class: "panel", "aria-labelledby": "dup-title" },
    h("h2", { id: "dup-title", text: "Possible duplicates" }),
    found.length
      ? h(
          "ul",
          { class: "ticket-list" },
          found.map((d) =>
            h(
              "li",
              {},
              h("a", { href: `/customers/${d.customer.id}`, text: d.customer.display_name }),
              ` (${d.reasons.join(", ")}; score ${d.score.toFixed(2)}) `,
              h("button", {
                type: "button",
                text: "Merge into this customer",
                onclick: () => {
                  if (confirm(`Merge ${d.customer.display_name} into ${customer.display_name}? This cannot be undone.`)) {
                    act(() => api.post(`/customers/${customerId}/merge`, { merged_id: d.customer.id }), "Merged.");
                  }
                },
              }),
            ),
          ),
        )
      : h("p", { class: "muted", text: "None found." }),
  );
}

async function render() {
  document.title = `${customer.display_name} · contact-center`;
  const [tickets, duplicates] = await Promise.all([ticketsSection(), duplicatesSection()]);
  replace(
    main,
    h(
      "header",
      { class: "page-title" },
      h("h1", { id: "customer-name", text: customer.display_name }),
      customer.company ? h("p", { class: "company", text: customer.company }) : null,
      ownerLine(),
      h("p", { class: "muted", text: `Customer since ${dateTime(customer.created_at)}` }),
    ),
    h("div", { class: "columns" }, h("div", {}, timelineSection(), tickets), h("div", {}, profileForm(), contactPoints(), duplicates)),
  );
  main.removeAttribute("aria-busy");
  await loadTimeline();
  document.body.dataset.ready = "true";
}

const refresh = debounce(() => loadTimeline(), 400);
socket.on("call.updated", (frame) => frame.customer_id === customerId && refresh());
socket.on("reconnected", refresh);
setInterval(refresh, 30000);
socket.start();
await render();
