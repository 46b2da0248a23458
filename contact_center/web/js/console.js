// The agent console: presence, the screen-pop with the call's buttons, the after-call outcome,
// my open tickets and my chats. Live through the agent socket; restored through the API on load.

import { api } from "./api.js";
import { cardFromApi, isNewCaller, renderCard, renderNewCustomer } from "./card.js";
import { startChatPanel } from "./chat.js";
import { badge, byId, debounce, duration, errorText, h, notify, replace, timeAgo, typing } from "./dom.js";
import { startPage } from "./shell.js";
import { createSoftphone } from "./softphone.js";
import { myOpenTickets, openNextTicket } from "./work.js";

const ENDED = new Set(["completed", "busy", "no-answer", "canceled", "failed"]);
const STATE_LABELS = {
  available: "Available",
  ringing: "Ringing",
  "on-call": "On a call",
  "wrap-up": "Wrap-up",
  away: "Away",
  offline: "Offline",
};

const { me, socket } = await startPage("/console");
const config = await api.get("/console/config");
const phone = await createSoftphone(config, me);

let presence = null;
let call = null; // {callSid, interactionId, customerId, from, card, state: ringing|connected|ended, answered}

byId("softphone-kind").textContent = {
  sandbox: "Calls are answered through the Twilio sandbox.",
  twilio: "Calls ring in this browser.",
  none: me.phone ? `Calls ring your phone ${me.phone}.` : "No softphone configured.",
}[phone.kind];
replace(
  byId("disposition"),
  h("option", { value: "", text: "Choose…" }),
  config.dispositions.map((d) => h("option", { value: d, text: d })),
);

// --- presence --------------------------------------------------------------------------------

function renderPresence() {
  if (!presence) return;
  const state = presence.state;
  document.body.dataset.presence = state;
  for (const radio of document.querySelectorAll('input[name="presence"]')) {
    radio.checked = radio.value === state;
    radio.disabled = state === "ringing" || state === "on-call";
  }
  const since = presence.since && presence.seconds_in_state !== null ? new Date(presence.since) : null;
  const parts = [badge(STATE_LABELS[state] || state, state)];
  if (state === "wrap-up" && presence.until) {
    const left = (new Date(presence.until) - Date.now()) / 1000;
    parts.push(` ends in ${duration(left)}`);
  } else if (since) {
    parts.push(` for ${duration((Date.now() - since) / 1000)}`);
  }
  replace(byId("presence-state"), parts);
  byId("end-wrap-up").hidden = state !== "wrap-up";
}

// A change the agent makes always wins: a read that overlaps a change is dropped, so a slow
// read can never undo the state the agent has just chosen.
let presenceChanges = 0;
let changesInFlight = 0;

async function loadPresence() {
  const changesBefore = presenceChanges;
  const latest = await api.get("/presence/me");
  if (changesInFlight || changesBefore !== presenceChanges) return;
  presence = latest;
  renderPresence();
}

async function setPresence(state) {
  presenceChanges += 1;
  changesInFlight += 1;
  let changed = null;
  try {
    changed = await api.put("/presence/me", { state });
  } catch (error) {
    notify(errorText(error), "error");
  } finally {
    changesInFlight -= 1;
  }
  if (changed) {
    presence = changed;
    renderPresence();
  } else {
    await loadPresence();
  }
}

for (const radio of document.querySelectorAll('input[name="presence"]')) {
  radio.addEventListener("change", () => radio.checked && setPresence(radio.value));
}
byId("end-wrap-up").addEventListener("click", () => setPresence("available"));

// --- the call --------------------------------------------------------------------------------

function renderCall() {
  const status = byId("call-status");
  const answer = byId("answer");
  const hangUp = byId("hang-up");
  if (!call) {
    status.textContent = "No call right now.";
    answer.disabled = true;
    hangUp.disabled = true;
    document.body.dataset.call = "none";
    return;
  }
  document.body.dataset.call = call.state;
  const who = call.card ? call.card.display_name : call.from || "unknown caller";
  status.textContent = {
    ringing: `Incoming call from ${who}`,
    connected: `On a call with ${who}`,
    ended: call.answered ? `Call with ${who} ended` : `Missed call from ${who}`,
  }[call.state];
  answer.disabled = call.state !== "ringing" || phone.kind === "none";
  hangUp.disabled = call.state !== "connected" || phone.kind === "none";
  byId("outcome-form").hidden = !(call.state === "ended" && call.answered && !call.outcomeSaved);
}

function ticketAction() {
  const card = call.card;
  if (!card) return null;
  if (card.open_tickets.length) {
    const t = card.open_tickets[0];
    return h("a", { class: "button", href: `/tickets/${t.id}`, target: "_blank", rel: "noopener", text: `Open ticket #${t.number}` });
  }
  return h("button", {
    type: "button",
    id: "create-ticket",
    text: "Create ticket",
    onclick: async (event) => {
      event.currentTarget.disabled = true;
      try {
        const ticket = await api.post("/tickets", {
          customer_id: card.customer_id,
          subject: `Call from ${card.display_name}`,
          source_channel: "voice",
        });
        card.open_tickets = [ticket];
        notify(`Ticket #${ticket.number} created.`);
        renderPop();
      } catch (error) {
        notify(errorText(error), "error");
        event.currentTarget.disabled = false;
      }
    },
  });
}

function renderPop() {
  const target = byId("pop-card");
  if (!call) {
    replace(target, h("p", { class: "empty", text: "When a call is routed to you, the caller's card appears here." }));
    return;
  }
  const actions = h(
    "div",
    { class: "actions card-actions" },
    call.customerId
      ? h("a", { class: "button", href: `/customers/${call.customerId}`, target: "_blank", rel: "noopener", text: "Open customer" })
      : null,
    ticketAction(),
  );
  const body = isNewCaller(call.card, call.from)
    ? renderNewCustomer(call.card, call.from, () => refreshCard())
    : renderCard(call.card, { from: call.from, campaign: call.campaign });
  replace(target, body, actions);
}

async function refreshCard() {
  if (!call || !call.customerId) return;
  try {
    call.card = await cardFromApi(call.customerId);
    renderPop();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function screenPop(frame) {
  call = {
    callSid: frame.call_sid,
    interactionId: frame.interaction_id,
    customerId: frame.card ? frame.card.customer_id : frame.customer_id,
    from: frame.from,
    card: frame.card,
    campaign: frame.campaign ? frame.campaign.name || frame.campaign : null,
    state: "ringing",
    answered: false,
    poppedAt: performance.now(),
  };
  byId("outcome-note").value = "";
  byId("disposition").value = "";
  renderPop();
  renderCall();
  if (!presence || presence.call_sid !== call.callSid) loadPresence().catch(() => {});
  document.title = `Call: ${call.card ? call.card.display_name : call.from} · contact-center`;
  byId("answer").focus();
}

function callUpdated(frame) {
  if (!call || frame.call_sid !== call.callSid) return;
  // "in-progress" is the caller's leg reaching the service; "answered" is an agent taking it.
  if (frame.state === "answered") {
    call.state = "connected";
    call.answered = true;
  } else if (ENDED.has(frame.state)) {
    call.state = "ended";
    document.title = "Console · contact-center";
  }
  renderCall();
}

async function answer() {
  if (!call || call.state !== "ringing") return;
  byId("answer").disabled = true;
  byId("call-status").textContent = "Answering…";
  try {
    await phone.answer(call.callSid);
    call.state = "connected";
    call.answered = true;
    renderCall();
    byId("hang-up").focus();
  } catch (error) {
    notify(`Could not answer: ${errorText(error)}`, "error");
    renderCall();
  }
}

async function hangUp() {
  if (!call || call.state !== "connected") return;
  byId("hang-up").disabled = true;
  try {
    await phone.hangUp(call.callSid);
    call.state = "ended";
    renderCall();
    byId("disposition").focus();
  } catch (error) {
    notify(`Could not hang up: ${errorText(error)}`, "error");
    renderCall();
  }
}

byId("answer").addEventListener("click", answer);
byId("hang-up").addEventListener("click", hangUp);

byId("outcome-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!call) return;
  const disposition = byId("disposition").value;
  const note = byId("outcome-note").value;
  try {
    await api.post(`/calls/${call.interactionId}/outcome`, { disposition, note: note || null });
    call.outcomeSaved = true;
    notify("Outcome saved.");
    renderCall();
    refreshCard();
  } catch (error) {
    notify(errorText(error), "error");
  }
});

/** After a reload: the call I am on (or that rings for me), from the live calls API. */
async function restoreCall() {
  if (call && call.state !== "ended") return;
  const live = await api.get("/calls/live");
  const mine = live.items.find((c) => c.agent_id === me.id && c.status !== "queued-for-agent");
  if (!mine) return;
  const state = presence && presence.call_sid === mine.call_sid && presence.state === "on-call" ? "connected" : "ringing";
  call = {
    callSid: mine.call_sid,
    interactionId: mine.interaction_id,
    customerId: mine.customer_id,
    from: mine.caller,
    card: null,
    state,
    answered: state === "connected",
  };
  try {
    call.card = await cardFromApi(mine.customer_id);
  } catch {
    /* shown as an unknown caller */
  }
  renderPop();
  renderCall();
}

// --- my tickets ------------------------------------------------------------------------------

async function loadTickets() {
  const list = byId("my-ticket-list");
  try {
    const tickets = await myOpenTickets();
    replace(
      list,
      tickets.length
        ? tickets.slice(0, 15).map((t) =>
            h(
              "li",
              {},
              h("a", { href: `/tickets/${t.id}`, text: `#${t.number} ${t.subject}` }),
              " ",
              badge(t.priority),
              " ",
              timeAgo(t.updated_at),
            ),
          )
        : h("li", { class: "empty", text: "Nothing assigned to you." }),
    );
  } catch (error) {
    replace(list, h("li", { class: "error", text: errorText(error) }));
  }
}
const reloadTickets = debounce(loadTickets, 300);

// --- live ------------------------------------------------------------------------------------

const mine = (frame) => frame.scope !== "team" && (frame.agent_id === undefined || frame.agent_id === me.id);

socket.on("call.screen_pop", (frame) => mine(frame) && screenPop(frame));
socket.on("call.updated", (frame) => mine(frame) && callUpdated(frame));
socket.on("presence.changed", (frame) => {
  if (!mine(frame)) return;
  presence = { ...presence, ...frame, seconds_in_state: 0 };
  renderPresence();
  if (call && frame.call_sid === call.callSid) {
    if (frame.state === "on-call") {
      call.state = "connected";
      call.answered = true;
    } else if (frame.state === "wrap-up") {
      call.state = "ended";
      call.answered = true;
    } else if (frame.state === "available" && call.state === "ringing") {
      call.state = "ended"; // the offer went elsewhere
    }
    renderCall();
  }
});
socket.on("ticket.opened", reloadTickets);
socket.on("ticket.updated", reloadTickets);
socket.on("sms.received", reloadTickets);
socket.on("reconnected", async () => {
  await loadPresence();
  await restoreCall();
  loadTickets();
});

document.addEventListener("keydown", (event) => {
  if (typing(event)) return;
  const key = event.key.toLowerCase();
  if (key === "a") answer();
  else if (key === "h") hangUp();
  else if (key === "n") openNextTicket().then((found) => found || notify("No open tickets assigned to you."));
  else return;
  event.preventDefault();
});

setInterval(renderPresence, 1000);
socket.start();
await loadPresence();
await restoreCall();
loadTickets();
await startChatPanel(byId("chat-list"), socket, me);
document.body.dataset.ready = "true";
