"""Escalation notices by email: one message per level fired and person notified who has an
address, queued through the mail outbox in the escalation pass's transaction.

The notice is not the customer's conversation: it carries no ticket marker (a reply to it is not
threaded into the ticket, the agent does not become a participant), is marked automatic, and is
logged on no customer's timeline (a mail to staff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_core.db import UnitOfWork
from crm_core.models import EmailKind, EscalationRule, Ticket
from crm_core.services.email_outbound import EmailDraft, Identity, queue_emails

TARGET_NAMES = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


@dataclass(frozen=True, slots=True)
class EscalationMailer:
    identity: Identity
    secret: bytes
    domain: str

    def draft(self, ticket: Ticket, rule: EscalationRule, due: datetime | None, to: str) -> EmailDraft:
        target = TARGET_NAMES.get(str(rule.target), str(rule.target))
        state = "overdue" if due is not None and rule.percent is None else "due soon"
        due_text = f"{due:%Y-%m-%d %H:%M} UTC" if due is not None else "unknown"
        return EmailDraft(
            identity=self.identity,
            kind=EmailKind.MESSAGE,
            to=[to],
            subject=f"Ticket #{ticket.number}: {target} {state} (escalation level {rule.level})",
            text=(
                f"Ticket #{ticket.number}: {ticket.subject}\n\n"
                f"The {target} is {state}: due {due_text}.\n"
                f"Escalation level {rule.level}: {', '.join(rule.actions)}.\n"
                f"Priority {ticket.priority}, status {ticket.status}.\n"
            ),
            to_staff=True,
            automatic=True,
            meta={"escalation": {"ticket_id": ticket.id, "target": str(rule.target), "level": rule.level}},
        )

    async def queue(self, uow: UnitOfWork, drafts: Sequence[EmailDraft]) -> int:
        await queue_emails(uow, drafts, secret=self.secret, domain=self.domain, announce=False)
        return len(drafts)
