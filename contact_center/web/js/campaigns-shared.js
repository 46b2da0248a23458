// What the campaign pages share: who may edit, the status actions, and how figures are shown.

import { api } from "./api.js";
import { badge, h } from "./dom.js";

export const EDITORS = ["supervisor", "admin"];
export const OUTCOMES = ["human", "busy", "no_answer", "machine", "failed"];
// Which status actions a campaign in each status offers (the API refuses the others).
export const ACTIONS = {
  draft: ["start", "stop"],
  running: ["pause", "stop"],
  paused: ["start", "stop"],
  stopped: [],
};
const LABELS = { start: "Start", pause: "Pause", stop: "Stop" };

export const canEdit = (me) => EDITORS.includes(me.role);

export function percent(share, digits = 1) {
  if (share === null || share === undefined || share === "") return "–";
  return `${(Number(share) * 100).toFixed(digits)}%`;
}

export function money(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function statusBadge(status) {
  return badge(status, `campaign-${status}`);
}

/** Start / pause / stop buttons for a campaign; `done(campaign)` runs after a change. */
export function statusButtons(campaign, done, fail) {
  return (ACTIONS[campaign.status] || []).map((verb) =>
    h("button", {
      type: "button",
      class: verb === "stop" ? "danger" : verb === "start" ? "primary" : null,
      dataset: { action: verb, campaign: campaign.id },
      text: LABELS[verb],
      onclick: async () => {
        if (verb === "stop" && !window.confirm(`Stop "${campaign.name}" for good?`)) return;
        try {
          done(await api.post(`/campaigns/${campaign.id}/${verb}`));
        } catch (error) {
          fail(error);
        }
      },
    }),
  );
}
