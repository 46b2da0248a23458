// The supervisors' wallboard: agents with presence and time in state, the queue, active calls and
// chats, tickets at risk, today's volumes (Chart.js), answered/abandoned and speed of answer, and the
// supervisor's actions. Presence changes arrive live over the agent socket (team fan-out);
// figures are re-read through the API when calls move and every few seconds.

import { ApiError, api } from "./api.js";
import { badge, byId, CHANNEL_NAMES, debounce, duration, errorText, h, notify, refusal, replace, timeAgo } from "./dom.js";
import { halt, startPage } from "./shell.js";

const STATS_EVERY_MS = 20000;
const PASSIVE = ["available", "away", "offline"];
const { me, socket } = await startPage("/wallboard");
if (!["supervisor", "admin"].includes(me.role)) {
  replace(byId("main"), refusal(new ApiError(403, "forbidden", "the wallboard is for supervisors and admins"), "wallboard"));
  await halt();
}
byId("wallboard-scope").textContent = me.role === "admin" ? "(everyone)" : "(my team)";

const agents = new Map(); // id -> presence row from /presence, kept live
let chart = null;

// --- agents ----------------------------------------------------------------------------------

function presenceSelect(agent) {
  const select = h(
    "select",
    { "aria-label": `Set ${agent.display_name}'s presence`, dataset: { agent: agent.agent_id } },
    h("option", { value: "", text: "Set…" }),
    PASSIVE.map((state) => h("option", { value: state, text: state })),
  );
  select.addEventListener("change", async () => {
    if (!select.value) return;
    try {
      const updated = await api.put(`/presence/${agent.agent_id}`, { state: select.value });
      agents.set(updated.agent_id, updated);
      notify(`${agent.display_name} is now ${updated.state}.`);
      renderAgents();
    } catch (error) {
      notify(errorText(error), "error");
    }
    select.value = "";
  });
  return select;
}

function secondsIn(agent) {
  if (!agent.since || agent.seconds_in_state === null) return null;
  return (Date.now() - new Date(agent.since).getTime()) / 1000;
}

function renderAgents() {
  const rows = [...agents.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));
  replace(
    byId("agent-rows"),
    rows.map((agent) =>
      h(
        "tr",
        { dataset: { agent: agent.agent_id, state: agent.state } },
        h("th", { scope: "row", text: agent.display_name }),
        h("td", { class: "state" }, badge(agent.state)),
        h("td", { class: "in-state", dataset: { since: agent.seconds_in_state === null ? "" : agent.since } }, duration(secondsIn(agent))),
        h("td", {}, agent.agent_id === me.id ? "" : presenceSelect(agent)),
      ),
    ),
  );
}

function tickAgents() {
  for (const cell of document.querySelectorAll("#agent-rows td.in-state")) {
    const since = cell.dataset.since;
    cell.textContent = since ? duration((Date.now() - new Date(since).getTime()) / 1000) : "–";
  }
}

async function loadAgents() {
  const list = await api.get("/presence");
  agents.clear();
  for (const row of list.items) agents.set(row.agent_id, row);
  renderAgents();
}

// --- calls -----------------------------------------------------------------------------------

const agentName = (id) => (id ? agents.get(id)?.display_name || `agent #${id}` : "–");

async function loadCalls() {
  const live = await api.get("/calls/live");
  const queued = live.items.filter((c) => c.queue_position !== null);
  const active = live.items.filter((c) => c.queue_position === null);
  byId("kpi-queued").textContent = String(live.queued);
  byId("kpi-longest").textContent = live.longest_wait_seconds === null ? "–" : duration(live.longest_wait_seconds);
  const customerLink = (c) => h("a", { href: `/customers/${c.customer_id}`, text: c.customer_name });
  replace(
    byId("queue-rows"),
    queued.length
      ? queued.map((c) => h("tr", {}, h("td", { text: c.queue_position }), h("td", {}, customerLink(c), " ", h("span", { class: "muted", text: c.caller || "" })), h("td", { class: "waiting", dataset: { started: c.started_at } }, duration(c.seconds))))
      : h("tr", {}, h("td", { colspan: 3, class: "empty", text: "Nobody waiting." })),
  );
  replace(
    byId("active-rows"),
    active.length
      ? active.map((c) => h("tr", {}, h("td", {}, customerLink(c)), h("td", { text: agentName(c.agent_id) }), h("td", {}, badge(c.status)), h("td", { class: "waiting", dataset: { started: c.started_at } }, duration(c.seconds))))
      : h("tr", {}, h("td", { colspan: 4, class: "empty", text: "No calls going on." })),
  );
}

function tickCalls() {
  for (const cell of document.querySelectorAll("td.waiting")) {
    cell.textContent = duration((Date.now() - new Date(cell.dataset.started).getTime()) / 1000);
  }
}

// --- figures, tickets, pool ------------------------------------------------------------------

function assigneeSelect(ticket) {
  const select = h(
    "select",
    { "aria-label": `Reassign ticket #${ticket.number}` },
    h("option", { value: "", text: "Unassigned", selected: !ticket.assignee_id }),
    [...agents.values()].map((a) => h("option", { value: a.agent_id, text: a.display_name, selected: a.agent_id === ticket.assignee_id })),
  );
  select.addEventListener("change", async () => {
    try {
      await api.post(`/tickets/${ticket.id}/assign`, { assignee_id: select.value ? Number(select.value) : null });
      notify(`Ticket #${ticket.number} reassigned.`);
      loadStats();
    } catch (error) {
      notify(errorText(error), "error");
    }
  });
  return select;
}

function renderChart(volumes) {
  const labels = volumes.map((v) => CHANNEL_NAMES[v.channel] || v.channel);
  replace(byId("volume-rows"), volumes.map((v) => h("tr", {}, h("th", { scope: "row", text: labels[volumes.indexOf(v)] }), h("td", { text: v.inbound }), h("td", { text: v.outbound }))));
  if (!window.Chart) return;
  const datasets = [
    { label: "Inbound", data: volumes.map((v) => v.inbound), backgroundColor: "#0b5cad" },
    { label: "Outbound", data: volumes.map((v) => v.outbound), backgroundColor: "#c98a00" },
  ];
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets.forEach((set, i) => (set.data = datasets[i].data));
    chart.update();
    return;
  }
  chart = new window.Chart(byId("volume-chart"), {
    type: "bar",
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

async function loadStats() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const stats = await api.get("/wallboard", { since: midnight.toISOString() });
  const calls = stats.calls;
  byId("kpi-offered").textContent = String(calls.offered);
  byId("kpi-answered").textContent = String(calls.answered);
  byId("kpi-abandoned").textContent = String(calls.abandoned);
  byId("kpi-asa").textContent = calls.average_speed_of_answer_seconds === null ? "–" : `${Math.round(calls.average_speed_of_answer_seconds)} s`;
  renderChart(stats.volumes);
  replace(
    byId("chat-rows"),
    stats.chats.length
      ? stats.chats.map((c) =>
          h(
            "tr",
            { dataset: { chat: c.interaction_id } },
            h("td", {}, h("a", { href: `/customers/${c.customer_id}`, text: c.customer_name })),
            h("td", { text: agentName(c.agent_id) }),
            h("td", {}, badge(c.status)),
            h("td", { class: "waiting", dataset: { started: c.started_at } }, duration((Date.now() - new Date(c.started_at)) / 1000)),
          ),
        )
      : h("tr", {}, h("td", { colspan: 4, class: "empty", text: "No chats going on." })),
  );
  replace(
    byId("risk-rows"),
    stats.tickets_at_risk.length
      ? stats.tickets_at_risk.map(({ ticket, due_at, breached }) =>
          h(
            "tr",
            { class: breached ? "breached" : "" },
            h("td", {}, h("a", { href: `/tickets/${ticket.id}`, text: `#${ticket.number} ${ticket.subject}` }), " ", badge(ticket.priority)),
            h("td", {}, breached ? badge("breached") : badge("due soon", "high"), " ", timeAgo(due_at)),
            h("td", {}, assigneeSelect(ticket)),
          ),
        )
      : h("tr", {}, h("td", { colspan: 3, class: "empty", text: "Nothing at risk." })),
  );
}

async function loadPool() {
  const pool = await api.get("/customers", { pool: true, limit: 10 });
  replace(
    byId("pool-rows"),
    pool.items.length
      ? pool.items.map((c) => {
          const select = h(
            "select",
            { "aria-label": `Assign ${c.display_name} to an agent` },
            h("option", { value: "", text: "Assign to…" }),
            [...agents.values()].map((a) => h("option", { value: a.agent_id, text: a.display_name })),
          );
          select.addEventListener("change", async () => {
            try {
              await api.patch(`/customers/${c.id}`, { owner_id: Number(select.value) });
              notify(`${c.display_name} assigned.`);
              loadPool();
            } catch (error) {
              notify(errorText(error), "error");
            }
          });
          const claim = h("button", {
            type: "button",
            text: "Claim",
            onclick: async () => {
              try {
                await api.post(`/customers/${c.id}/claim`);
                notify(`${c.display_name} is yours.`);
                loadPool();
              } catch (error) {
                notify(errorText(error), "error");
              }
            },
          });
          return h("tr", {}, h("td", {}, h("a", { href: `/customers/${c.id}`, text: c.display_name })), h("td", {}, timeAgo(c.created_at)), h("td", {}, claim, " ", select));
        })
      : h("tr", {}, h("td", { colspan: 3, class: "empty", text: "The pool is empty." })),
  );
}

async function loadAll() {
  try {
    await loadAgents();
    await Promise.all([loadCalls(), loadStats(), loadPool()]);
  } catch (error) {
    notify(errorText(error), "error");
  }
}

// --- live ------------------------------------------------------------------------------------

const reloadCalls = debounce(() => loadCalls().catch(() => {}), 250);
const reloadStats = debounce(() => loadStats().catch(() => {}), 1000);

socket.on("presence.changed", (frame) => {
  const known = agents.get(frame.agent_id);
  if (!known) return;
  agents.set(frame.agent_id, { ...known, state: frame.state, since: frame.since, until: frame.until, call_sid: frame.call_sid, seconds_in_state: 0 });
  renderAgents();
  reloadCalls();
});
socket.on("chat.assigned", reloadStats);
socket.on("chat.closed", reloadStats);
for (const type of ["call.updated", "call.screen_pop", "queue.changed"]) {
  socket.on(type, () => {
    reloadCalls();
    reloadStats();
  });
}
socket.on("reconnected", loadAll);
socket.start();
setInterval(() => {
  tickAgents();
  tickCalls();
}, 1000);
setInterval(() => socket.online && Promise.all([loadStats(), loadPool()]).catch(() => {}), STATS_EVERY_MS);
await loadAll();
document.body.dataset.ready = "true";
