// The customer card of a screen-pop: who is calling, their open tickets and last contacts.

import { api } from "./api.js";
import { badge, CHANNEL_NAMES, channelIcon, errorText, h, notify, timeAgo } from "./dom.js";

const ACTIVE = ["new", "open", "pending"];

/** The same card the screen-pop carries, read through the REST API (after a reload). */
export async function cardFromApi(customerId) {
  const [customer, tickets, timeline] = await Promise.all([
    api.get(`/customers/${customerId}`),
    api.get("/tickets", { customer_id: customerId, status: ACTIVE, limit: 20 }),
    api.get(`/customers/${customerId}/timeline`, { limit: 10 }),
  ]);
  let owner = null;
  if (customer.owner_id) {
    owner = { id: customer.owner_id, name: `agent #${customer.owner_id}` };
    try {
      owner.name = (await api.get(`/agents/${customer.owner_id}`)).display_name;
    } catch {
      /* another team's agent: the number will do */
    }
  }
  return {
    customer_id: customer.id,
    display_name: customer.display_name,
    company: customer.company,
    owner,
    tags: customer.tags,
    segment: customer.segment,
    phones: customer.phones.map((p) => p.e164),
    emails: customer.emails.map((e) => e.address),
    open_tickets: tickets.items,
    recent_interactions: timeline.items,
  };
}

/** A pool customer created for this number a moment ago: the caller is new to us. */
export function isNewCaller(card, from) {
  if (!card) return true;
  return !card.owner && card.display_name === from && card.recent_interactions.length <= 1 && !card.company;
}

function interactionLine(item) {
  const way = { inbound: "Incoming", outbound: "Outgoing" }[item.direction] || "Internal";
  const what = item.subject || item.summary || `${way} ${(CHANNEL_NAMES[item.channel] || item.channel).toLowerCase()}`;
  return h(
    "li",
    { class: "interaction" },
    channelIcon(item.channel),
    h("span", { class: "what", text: what }),
    h("span", { class: "status muted", text: item.status }),
    timeAgo(item.started_at),
  );
}

export function renderCard(card, { from, campaign } = {}) {
  const owner = card.owner ? card.owner.name : "Pool (no owner)";
  return h(
    "article",
    { class: "card", "aria-labelledby": "card-name", dataset: { customerId: card.customer_id } },
    h(
      "header",
      {},
      h("h3", { id: "card-name", class: "card-name", text: card.display_name }),
      card.company ? h("p", { class: "company", text: card.company }) : null,
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", { text: "Owner" }),
      h("dd", { class: "owner", text: owner }),
      from ? [h("dt", { text: "Calling from" }), h("dd", { text: from })] : null,
      card.segment ? [h("dt", { text: "Segment" }), h("dd", { text: card.segment })] : null,
      campaign ? [h("dt", { text: "Campaign" }), h("dd", { text: campaign })] : null,
    ),
    card.tags && card.tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, card.tags.map((t) => h("li", { text: t }))) : null,
    h(
      "section",
      { "aria-label": "Contact points" },
      h("h4", { text: "Contact points" }),
      h(
        "ul",
        { class: "contact-points" },
        card.phones.map((p) => h("li", {}, channelIcon("voice"), h("span", { text: p }))),
        card.emails.map((e) => h("li", {}, channelIcon("email"), h("span", { text: e }))),
      ),
    ),
    h(
      "section",
      { "aria-label": "Open tickets" },
      h("h4", { text: `Open tickets (${card.open_tickets.length})` }),
      card.open_tickets.length
        ? h(
            "ul",
            { class: "open-tickets" },
            card.open_tickets.map((t) =>
              h(
                "li",
                {},
                h("a", { href: `/tickets/${t.id}`, target: "_blank", rel: "noopener", text: `#${t.number} ${t.subject}` }),
                " ",
                badge(t.status),
                " ",
                badge(t.priority),
              ),
            ),
          )
        : h("p", { class: "muted", text: "None." }),
    ),
    h(
      "section",
      { "aria-label": "Last interactions" },
      h("h4", { text: "Last interactions" }),
      card.recent_interactions.length
        ? h("ol", { class: "history" }, card.recent_interactions.slice(0, 8).map(interactionLine))
        : h("p", { class: "muted", text: "No earlier contact." }),
    ),
  );
}

/** The "new customer" card: the number is known, the rest is ready to fill in. */
export function renderNewCustomer(card, from, onSaved) {
  const name = h("input", { id: "new-name", name: "display_name", required: true, maxlength: 200, autocomplete: "off" });
  const company = h("input", { id: "new-company", name: "company", maxlength: 200, autocomplete: "off" });
  const email = h("input", { id: "new-email", name: "email", type: "email", maxlength: 320, autocomplete: "off" });
  const claim = h("input", { id: "new-claim", name: "claim", type: "checkbox", checked: true });
  const form = h(
    "form",
    { class: "card new-customer", "aria-labelledby": "new-title" },
    h("h3", { id: "new-title", class: "card-name", text: "New customer" }),
    h("p", {}, "Calling from ", h("strong", { class: "number", text: from || "a withheld number" })),
    h("label", { for: "new-name", text: "Name" }),
    name,
    h("label", { for: "new-company", text: "Company" }),
    company,
    h("label", { for: "new-email", text: "Email" }),
    email,
    h("label", { class: "inline" }, claim, " Make me the owner"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: "Save customer" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!card) return;
    const body = { display_name: name.value.trim() };
    if (company.value.trim()) body.company = company.value.trim();
    if (email.value.trim()) body.add_emails = [email.value.trim()];
    try {
      await api.patch(`/customers/${card.customer_id}`, body);
      if (claim.checked) await api.post(`/customers/${card.customer_id}/claim`);
      notify("Customer saved.");
      onSaved();
    } catch (error) {
      notify(errorText(error), "error");
    }
  });
  return form;
}
