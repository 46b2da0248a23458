// Tickets as a queue of work: the order "next ticket" follows, shared by the console and inbox.

import { api } from "./api.js";

export const ACTIVE_STATUSES = ["new", "open", "pending"];
const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };

function dueOf(ticket) {
  const due = ticket.first_responded_at ? ticket.resolution_due_at : ticket.first_response_due_at;
  return due ? new Date(due).getTime() : Infinity;
}

/** Most urgent first: priority, then the nearest due time, then the oldest. */
export function byUrgency(a, b) {
  return (
    PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
    dueOf(a) - dueOf(b) ||
    new Date(a.created_at) - new Date(b.created_at)
  );
}

export async function myOpenTickets() {
  const page = await api.get("/tickets", { mine: true, status: ACTIVE_STATUSES, limit: 100 });
  return page.items.sort(byUrgency);
}

/** Go to my most urgent open ticket other than `currentId`. */
export async function openNextTicket(currentId = null) {
  const tickets = (await myOpenTickets()).filter((t) => t.id !== currentId);
  if (!tickets.length) return false;
  location.assign(`/tickets/${tickets[0].id}`);
  return true;
}
