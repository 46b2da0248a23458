// A campaign's live page: the agents working it and their state, calls in flight, its figures from /results and /activity, refreshed every few seconds
// (dials, answers, conversations, abandonment over 24 hours and 30 days against the limit,
// contacts in the last hour, list penetration, results by disposition, talk time, cost, revenue,
// ROI), a chart of the last hour's dials, the results as a CSV file, and for supervisors and
// admins start / pause / stop.

import { api } from "./api.js";
import { badge, byId, duration, errorText, h, notify, refusal, replace, timeAgo } from "./dom.js";
import { halt, startPage } from "./shell.js";
import { canEdit, money, percent, statusBadge, statusButtons } from "./campaigns-shared.js";

const REFRESH_MS = 3000;
const { me } = await startPage("/campaigns", { live: false });
const id = Number(location.pathname.split("/").pop());
let campaign;
let chart = null;
let labelOf = {};

try {
  campaign = await api.get(`/campaigns/${id}`);
} catch (error) {
  replace(byId("main"), refusal(error, "campaign"));
  document.body.dataset.ready = "true";
  await halt();
}

function showCampaign() {
  document.title = `${campaign.name} · contact-center`;
  byId("campaign-name").textContent = campaign.name;
  replace(byId("campaign-status"), statusBadge(campaign.status));
  byId("campaign-mode").textContent = campaign.mode;
  byId("campaign-caller-id").textContent = campaign.caller_id;
  byId("campaign-profile").textContent = `${campaign.regulatory_profile.toUpperCase()} rules, target ${percent(campaign.abandonment_target)}`;
  byId("campaign-script").textContent = campaign.script_template || "";
  byId("export-csv").href = `/api/v1/campaigns/${campaign.id}/results.csv`;
  replace(
    byId("status-actions"),
    canEdit(me)
      ? statusButtons(
          campaign,
          (changed) => {
            campaign = changed;
            notify(`"${campaign.name}" is ${campaign.status}.`);
            showCampaign();
          },
          (error) => notify(errorText(error), "error"),
        )
      : null,
  );
}

const set = (elementId, text) => (byId(elementId).textContent = String(text));

function abandonRow(label, a) {
  const over = a.live > 0 && a.rate > a.limit;
  return h(
    "tr",
    { class: over ? "breached" : null, dataset: { window: label } },
    h("th", { scope: "row", text: label }),
    h("td", { class: "num", text: a.abandoned }),
    h("td", { class: "num", text: a.live }),
    h("td", { class: "num rate", text: percent(a.rate, 2) }),
    h("td", { class: "num", text: percent(a.limit, 1) }),
  );
}

function showResults(r, activity) {
  set("kpi-dials", r.dials);
  set("kpi-live-answers", r.live_answers);
  set("kpi-conversations", r.conversations);
  set("kpi-penetration", percent(r.penetration));
  set("kpi-talk", duration(r.talk_seconds));
  set("kpi-cost", money(r.cost));
  set("kpi-revenue", money(r.revenue));
  set("kpi-roi", r.roi === null ? "–" : percent(r.roi, 0));
  replace(
    byId("disposition-rows"),
    Object.keys(r.by_disposition).length
      ? Object.entries(r.by_disposition).map(([code, n]) =>
          h("tr", { dataset: { code } }, h("th", { scope: "row", text: labelOf[code] || code }), h("td", { class: "num", text: n })),
        )
      : h("tr", {}, h("td", { colspan: 2, class: "empty", text: "No dispositions yet." })),
  );
  const line = (label, value) => h("tr", {}, h("th", { scope: "row", text: label }), h("td", { class: "num", text: value }));
  replace(
    byId("outcome-rows"),
    line("Machines", r.machines),
    line("No answer", r.no_answers),
    line("Busy", r.busy),
    line("Failed", r.failed),
    line("Abandoned (all time)", r.abandoned),
    line("Numbers on the list", r.contacts),
    Object.entries(r.contacts_by_state).map(([state, n]) => line(`· ${state.replace("_", " ")}`, n)),
  );
  if (!activity) return;
  set("kpi-contacts-per-hour", activity.conversations_last_hour);
  set("kpi-in-flight", activity.calls_in_flight);
  set("kpi-dial-rate", activity.dials_per_minute[activity.dials_per_minute.length - 1]);
  const now = new Date(activity.at).getTime();
  replace(
    byId("agent-rows"),
    activity.agents.length
      ? activity.agents.map((a) =>
          h(
            "tr",
            { dataset: { agent: a.agent_id, state: a.state } },
            h("th", { scope: "row", text: a.display_name }),
            h("td", {}, badge(a.state)),
            h("td", { text: duration((now - new Date(a.since).getTime()) / 1000) }),
            h("td", {}, timeAgo(a.joined_at)),
          ),
        )
      : h("tr", {}, h("td", { colspan: 4, class: "empty", text: "Nobody is working this campaign now." })),
  );
  set("dials-last-hour", activity.dials_last_hour);
  replace(byId("abandon-rows"), abandonRow("24 hours", activity.abandonment_24h), abandonRow("30 days", activity.abandonment_30d));
  drawChart(activity);
}

function drawChart(activity) {
  const end = new Date(activity.at).getTime();
  const labels = activity.dials_per_minute.map((_, i) =>
    new Date(end - (59 - i) * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
  );
  if (!window.Chart) return;
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = activity.dials_per_minute;
    chart.update();
    return;
  }
  chart = new window.Chart(byId("dials-chart"), {
    type: "bar",
    data: { labels, datasets: [{ label: "Dials a minute", data: activity.dials_per_minute, backgroundColor: "#0b5cad" }] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
}

async function refresh() {
  try {
    const [latest, results, activity] = await Promise.all([
      api.get(`/campaigns/${id}`),
      api.get(`/campaigns/${id}/results`),
      api.get(`/campaigns/${id}/activity`).catch(() => null),
    ]);
    if (latest.status !== campaign.status || latest.updated_at !== campaign.updated_at) {
      campaign = latest;
      showCampaign();
    }
    showResults(results, activity);
    byId("updated-at").textContent = new Date().toLocaleTimeString();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

labelOf = Object.fromEntries(
  (await api.get(`/campaigns/${id}/dispositions`).then((r) => r.items, () => [])).map((d) => [d.code, d.label]),
);
showCampaign();
byId("campaign-page").hidden = false;
await refresh();
setInterval(refresh, REFRESH_MS);
document.body.dataset.ready = "true";
