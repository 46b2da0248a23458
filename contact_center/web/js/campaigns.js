// The campaigns page: the campaigns one may see with their figures; supervisors and admins also
// create and edit them (settings, members, script, dispositions, retry rules), load their call
// lists (a CSV file, customers by filter, another campaign's results) and start, pause or stop them.
// Agents see the campaigns they work, read-only, as the API shows them.

import { api } from "./api.js";
import { byId, errorText, h, notify, replace } from "./dom.js";
import { startPage } from "./shell.js";
import { canEdit, OUTCOMES, percent, statusBadge, statusButtons } from "./campaigns-shared.js";

const { me } = await startPage("/campaigns", { live: false });
const editor = canEdit(me);
const form = byId("campaign-form");
let campaigns = [];
let editing = null; // the campaign in the editor, null for a new one
let csrfToken = null;

for (const el of document.querySelectorAll(".edit-only")) if (!editor) el.remove();
byId("read-only-note").hidden = editor;

async function figures(campaign) {
  try {
    return await api.get(`/campaigns/${campaign.id}/results`);
  } catch {
    return null;
  }
}

function row(campaign, results) {
  return h(
    "tr",
    { dataset: { campaign: campaign.id, status: campaign.status } },
    h("td", {}, h("a", { href: `/campaigns/${campaign.id}`, class: "campaign-name", text: campaign.name })),
    h("td", {}, statusBadge(campaign.status)),
    h("td", { text: campaign.mode }),
    h("td", { class: "num", text: results ? results.dials : "–" }),
    h("td", { class: "num", text: results ? results.conversations : "–" }),
    h("td", { class: "num", text: results ? percent(results.penetration) : "–" }),
    h("td", { class: "num", text: results ? `${percent(results.abandonment.rate)} / ${percent(results.abandonment.limit)}` : "–" }),
    editor
      ? h(
          "td",
          { class: "row-actions" },
          campaign.status !== "stopped"
            ? h("button", { type: "button", dataset: { action: "edit" }, text: "Edit", onclick: () => openEditor(campaign) })
            : null,
          statusButtons(campaign, changed, (error) => notify(errorText(error), "error")),
        )
      : null,
  );
}

function changed(campaign) {
  notify(`"${campaign.name}" is ${campaign.status}.`);
  load();
}

async function load() {
  try {
    campaigns = (await api.get("/campaigns")).items;
  } catch (error) {
    notify(errorText(error), "error");
    return;
  }
  const results = await Promise.all(campaigns.map(figures));
  replace(
    byId("campaign-rows"),
    campaigns.length
      ? campaigns.map((c, i) => row(c, results[i]))
      : h("tr", {}, h("td", { colspan: 8, class: "empty", text: "No campaigns yet." })),
  );
  byId("campaign-count").textContent = `(${campaigns.length})`;
  if (editor) {
    const source = byId("lf-source");
    replace(source, campaigns.filter((c) => !editing || c.id !== editing.id).map((c) => h("option", { value: c.id, text: c.name })));
  }
}

// --- The editor -------------------------------------------------------------------------------

const FIELDS = [
  "name", "caller_id", "mode", "regulatory_profile", "starts_on", "ends_on", "daily_start",
  "daily_end", "schedule_timezone", "machine_action", "machine_message", "price_per_minute", "script_template",
];

const CLEARABLE = new Set(["starts_on", "ends_on", "daily_start", "daily_end", "machine_message"]);

function dispositionRow(d = {}) {
  const check = (name) => h("td", {}, h("input", { type: "checkbox", name, checked: Boolean(d[name]), "aria-label": name }));
  return h(
    "tr",
    { class: "disposition" },
    h("td", {}, h("input", { name: "code", value: d.code || "", required: true, maxlength: 50, readonly: Boolean(d.code), "aria-label": "Code" })),
    h("td", {}, h("input", { name: "label", value: d.label || "", required: true, maxlength: 200, "aria-label": "Label" })),
    check("final"),
    check("callback"),
    check("do_not_call"),
    check("converted"),
    h("td", {}, h("input", { name: "value", type: "number", min: 0, step: "0.01", value: d.value ?? "0", "aria-label": "Value" })),
    h("td", {}, h("button", { type: "button", class: "link", text: "Remove", onclick: (e) => e.target.closest("tr").remove() })),
  );
}

function retryRow(outcome, rule = {}) {
  const number = (name, value, label) => h("td", {}, h("input", { name, type: "number", min: 0, value: value ?? "", "aria-label": `${outcome}: ${label}` }));
  return h(
    "tr",
    { class: "retry", dataset: { outcome } },
    h("th", { scope: "row", text: outcome.replace("_", " ") }),
    number("delay_minutes", rule.delay_seconds === undefined ? "" : Math.round(rule.delay_seconds / 60), "retry after"),
    number("max_per_day", rule.max_per_day, "at most a day"),
    number("max_total", rule.max_total, "at most in all"),
  );
}

async function openEditor(campaign) {
  editing = campaign;
  form.reset();
  const agents = await api.get("/agents").then((r) => r.items || r, () => []);
  replace(
    byId("member-boxes"),
    agents
      .filter((a) => a.active !== false)
      .map((a) =>
        h("label", { class: "inline" }, h("input", { type: "checkbox", name: "agent", value: a.id, checked: Boolean(campaign && campaign.agent_ids.includes(a.id)) }), ` ${a.display_name}`),
      ),
  );
  let dispositions = [];
  let rules = [];
  if (campaign) {
    for (const name of FIELDS) {
      const value = campaign[name];
      if (value !== null && value !== undefined) form.elements[name].value = name.startsWith("daily_") ? String(value).slice(0, 5) : value;
    }
    form.elements.abandonment_target.value = (Number(campaign.abandonment_target) * 100).toFixed(1);
    if (campaign.team_id) form.elements.team_id.value = campaign.team_id;
    [dispositions, rules] = await Promise.all([
      api.get(`/campaigns/${campaign.id}/dispositions`).then((r) => r.items),
      api.get(`/campaigns/${campaign.id}/retry-rules`).then((r) => r.items),
    ]);
  }
  replace(byId("disposition-rows"), dispositions.map((d) => dispositionRow(d)));
  replace(byId("retry-rows"), OUTCOMES.map((o) => retryRow(o, rules.find((r) => r.outcome === o))));
  // The title changes last: once it names the campaign, the form holds it.
  byId("editor-title").textContent = campaign ? `Edit ${campaign.name}` : "New campaign";
  byId("editor").hidden = false;
  byId("loader").hidden = !campaign;
  byId("load-report").textContent = "";
  await load();
  byId("f-name").focus();
}

function campaignFields() {
  const data = new FormData(form);
  const fields = {};
  for (const name of FIELDS) {
    const value = String(data.get(name) ?? "").trim();
    fields[name] = value === "" ? null : value;
  }
  fields.script_template = fields.script_template ?? "";
  const target = String(data.get("abandonment_target") || "").trim();
  fields.abandonment_target = target === "" ? null : (Number(target) / 100).toFixed(4);
  const team = data.get("team_id");
  if (team) fields.team_id = Number(team);
  // Only the optional dates, hours and message may be cleared; other fields left empty keep their value.
  for (const [k, v] of Object.entries(fields)) if (v === null && (!editing || !CLEARABLE.has(k))) delete fields[k];
  return fields;
}

/** The retry rules filled in, as [outcome, rule]; a row filled in part is refused before anything is saved. */
function filledRetryRules() {
  const rules = [];
  for (const tr of byId("retry-rows").querySelectorAll("tr")) {
    const value = (name) => tr.querySelector(`[name=${name}]`).value;
    const given = [value("delay_minutes"), value("max_per_day"), value("max_total")].filter((v) => v !== "").length;
    if (!given) continue;
    if (given < 3) throw new Error(`Retry rule for ${tr.dataset.outcome.replace("_", " ")}: fill in all three numbers.`);
    rules.push([
      tr.dataset.outcome,
      { delay_seconds: Number(value("delay_minutes")) * 60, max_per_day: Number(value("max_per_day")), max_total: Number(value("max_total")) },
    ]);
  }
  return rules;
}

async function save(event) {
  event.preventDefault();
  try {
    const retryRules = filledRetryRules();
    const fields = campaignFields();
    const created = !editing;
    const campaign = editing ? await api.patch(`/campaigns/${editing.id}`, fields) : await api.post("/campaigns", fields);
    editing = campaign; // a step below that fails is retried on this campaign, never a second one
    const agentIds = [...form.querySelectorAll("input[name=agent]:checked")].map((box) => Number(box.value));
    await api.put(`/campaigns/${campaign.id}/members`, { agent_ids: agentIds, team_ids: campaign.team_ids || [] });
    const before = !created ? (await api.get(`/campaigns/${campaign.id}/dispositions`)).items.map((d) => d.code) : [];
    const kept = [];
    for (const tr of byId("disposition-rows").querySelectorAll("tr")) {
      const input = (name) => tr.querySelector(`[name=${name}]`);
      const code = input("code").value.trim();
      if (!code) continue;
      kept.push(code);
      await api.put(`/campaigns/${campaign.id}/dispositions/${encodeURIComponent(code)}`, {
        label: input("label").value.trim() || code,
        final: input("final").checked,
        callback: input("callback").checked,
        do_not_call: input("do_not_call").checked,
        converted: input("converted").checked,
        value: input("value").value || "0",
      });
    }
    for (const code of before.filter((c) => !kept.includes(c))) {
      await api.raw("DELETE", `/api/v1/campaigns/${campaign.id}/dispositions/${encodeURIComponent(code)}`);
    }
    for (const [outcome, rule] of retryRules) await api.put(`/campaigns/${campaign.id}/retry-rules/${outcome}`, rule);
    notify(`Saved "${campaign.name}".`);
    await openEditor(await api.get(`/campaigns/${campaign.id}`));
  } catch (error) {
    notify(errorText(error), "error");
  }
}

// --- Loading the call list ----------------------------------------------------------------------

function report(result) {
  const rejected = result.imported?.rejected?.length || 0;
  const parts = [`${result.added} added`, `${result.already} already on the list`];
  if (rejected) parts.push(`${rejected} rows rejected`);
  if (result.missing_lines?.length) parts.push(`no number on lines ${result.missing_lines.join(", ")}`);
  byId("load-report").textContent = parts.join(", ") + ".";
  notify(byId("load-report").textContent);
  load();
}

async function uploadCsv(event) {
  event.preventDefault();
  const file = byId("csv-file").files[0];
  if (!file || !editing) return;
  csrfToken = csrfToken || (await api.get("/auth/me")).csrf_token;
  const response = await fetch(`/api/v1/campaigns/${editing.id}/contacts/import`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "text/csv", Accept: "application/json", "X-CSRF-Token": csrfToken },
    body: file,
  }).catch(() => null);
  const data = response ? await response.json().catch(() => null) : null;
  if (!response || !response.ok) {
    notify(data?.error?.message || "The file could not be loaded.", "error");
    return;
  }
  report(data);
  event.target.reset();
}

async function loadCustomers(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const filters = {};
  for (const name of ["q", "phone"]) if (String(data.get(name) || "").trim()) filters[name] = String(data.get(name)).trim();
  if (data.get("pool")) filters.pool = true;
  try {
    report(await api.post(`/campaigns/${editing.id}/contacts/from-customers`, filters));
  } catch (error) {
    notify(errorText(error), "error");
  }
}

async function loadFromCampaign(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const codes = String(data.get("dispositions") || "").split(/[,，\s]+/).filter(Boolean);
  try {
    report(await api.post(`/campaigns/${editing.id}/contacts/from-campaign`, { source_id: Number(data.get("source_id")), dispositions: codes }));
  } catch (error) {
    notify(errorText(error), "error");
  }
}

if (editor) {
  if (me.role === "admin") {
    const teams = await api.get("/teams").then((r) => r.items || r, () => []);
    byId("f-team").append(...teams.map((t) => h("option", { value: t.id, text: t.name })));
    byId("team-field").hidden = false;
  }
  byId("new-campaign").addEventListener("click", () => openEditor(null));
  byId("close-editor").addEventListener("click", () => {
    editing = null;
    byId("editor").hidden = true;
    byId("loader").hidden = true;
  });
  byId("add-disposition").addEventListener("click", () => byId("disposition-rows").append(dispositionRow()));
  form.addEventListener("submit", save);
  byId("load-csv").addEventListener("submit", uploadCsv);
  byId("load-customers").addEventListener("submit", loadCustomers);
  byId("load-campaign").addEventListener("submit", loadFromCampaign);
}

await load();
setInterval(load, 15000);
document.body.dataset.ready = "true";
