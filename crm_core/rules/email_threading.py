"""What a threaded reply does to the ticket it belongs to."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from crm_core.rules.ticket_status import ACTIVE_STATUSES, TicketStatus


class ThreadAction(enum.StrEnum):
    APPEND = "append"
    REOPEN = "reopen"
    NEW_LINKED = "new_linked"


def reply_action(
    status: TicketStatus,
    resolved_at: datetime | None,
    now: datetime,
    reopen_window: timedelta,
    *,
    automatic: bool,
) -> ThreadAction:
    """Active tickets take the reply; a resolved one reopens within the window; later, or once
    closed, the reply starts a new ticket linked to the old one. Auto-replies never reopen or
    open anything: they are filed on the ticket as they are."""
    if status in ACTIVE_STATUSES or automatic:
        return ThreadAction.APPEND
    if status is TicketStatus.RESOLVED and resolved_at is not None and now - resolved_at <= reopen_window:
        return ThreadAction.REOPEN
    return ThreadAction.NEW_LINKED
