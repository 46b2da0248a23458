"""A text arrives: what it is and what follows from it, in the desk's unit of work.

A text from a customer with an open SMS ticket joins it (a pending ticket, waiting on the
customer, opens again). Otherwise, by the policy's ticket rule, a new ticket opens at once (every
new conversation) or only once nobody has texted the customer back within ``no_answer_minutes``
(:func:`open_unanswered`, run by the desk's sweep). Keywords (STOP, START, HELP and their
synonyms, read as :mod:`crm_core.rules.sms_keywords` reads them) change the suppression list or
get the help reply; they join an open ticket but never open one. A longer text that asks to stop
("please stop texting me") opts the number out as well; it is stored as an "opt-out-request", the
agent is told why, and the customer gets the one confirmation text the rules allow
(``SmsPolicy.opt_out_confirmation``), which carriers send themselves only for their own keywords.
YES is a keyword only from a number that opted out; otherwise it is an answer.

The steps (storing the text, the suppression list, the outbox, tickets) are the core's
(``crm_core.services.sms_*``, ``crm_core.services.tickets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_core.db import UnitOfWork
from crm_core.models import Customer, SmsMessage, Ticket, utcnow
from crm_core.rules.sms_keywords import KeywordMatch, SmsKeyword, match_keyword, normalize
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.customers import lock_customer
from crm_core.services.sla import customer_wrote
from crm_core.services.sms_inbound import (
    KIND_HELP,
    KIND_KEYWORD,
    KIND_MESSAGE,
    KIND_OPT_OUT_REQUEST,
    attach,
    open_sms_ticket,
    received_event,
    sender_of,
    store_inbound,
    text_by_sid,
    unanswered_customers,
    unanswered_texts,
)
from crm_core.services.sms_outbound import KIND_OPT_OUT_CONFIRMATION, queue_sms
from crm_core.services.sms_suppression import (
    KEYWORD_CHARS,
    REASON_KEYWORD,
    REASON_REQUEST,
    lift,
    suppress,
    suppression_of,
    why_suppressed,
)
from crm_core.services.sms_types import InboundSms, SmsPolicy, TicketRule
from crm_core.services.tickets import open_ticket_for_customer, reopen_for_customer, system_note
from crm_core.types import Channel

TWILIO_OPT_OUT_TYPES = {"STOP": SmsKeyword.STOP, "START": SmsKeyword.START, "HELP": SmsKeyword.HELP}


@dataclass(frozen=True, slots=True)
class Received:
    message: SmsMessage
    created: bool
    """False: a redelivery of a text already stored; nothing changed."""
    ticket: Ticket | None = None
    keyword: SmsKeyword | None = None
    reply_id: int | None = None
    """The help reply or opt-out confirmation queued in the outbox, to send once this transaction
    commits."""


def read_keyword(inbound: InboundSms, opted_out: bool) -> KeywordMatch | None:
    """The keyword a text is (or the opt-out it asks for). Twilio's Advanced Opt-Out may be set
    up with keywords of its own: it names their kind in OptOutType."""
    found = match_keyword(inbound.body)
    if found is not None and found.word == "YES" and not opted_out:
        found = None  # "Yes." answers an agent's question; it re-subscribes only an opted-out number
    if found is None and (kind := TWILIO_OPT_OUT_TYPES.get(inbound.opt_out_type or "")):
        word = normalize(inbound.body).upper()[:KEYWORD_CHARS] or kind.value.upper()
        found = KeywordMatch(kind, word, exact=True)
    return found


def _opt_out_of(match: KeywordMatch) -> dict[str, str]:
    """Why the number was opted out, as the agent is shown it."""
    reason = REASON_KEYWORD if match.exact else REASON_REQUEST
    shown = {"keyword": match.word, "reason": reason, "why": why_suppressed(reason, match.word)}
    return shown | ({"phrase": match.phrase} if match.phrase else {})


def _note(phone: str, match: KeywordMatch) -> str:
    if match.keyword is SmsKeyword.START:
        return f"{phone} opted back in to text messages ({match.word})."
    if match.exact:
        return f"{phone} opted out of text messages ({match.word})."
    return f'{phone} opted out of text messages: their text asks to stop ("{match.phrase}").'


async def _reopen_waiting(uow: UnitOfWork, ticket: Ticket, now: datetime | None = None) -> None:
    """A customer's text answers a ticket waiting on them (pending): it is open again. On a
    ticket already open, an answer is now due (its SLA clock's next response)."""
    if ticket.status is not TicketStatus.PENDING:
        await customer_wrote(uow.session, ticket, now or utcnow())
        return
    await reopen_for_customer(uow, ticket, "sms", now)


async def _confirm_opt_out(
    uow: UnitOfWork, match: KeywordMatch, inbound: InboundSms, message: SmsMessage, policy: SmsPolicy
) -> int | None:
    """The one confirmation text the rules allow, unless the carrier sends its own (Twilio does
    for its keywords on long codes, and names any other it handled in OptOutType)."""
    if not policy.opt_out_confirmation or match.carrier_confirms or inbound.opt_out_type:
        return None
    reply = await queue_sms(
        uow,
        customer_id=message.customer_id,
        to=message.from_number,
        from_=message.to_number or policy.default_from,
        body=policy.opt_out_confirmation,
        kind=KIND_OPT_OUT_CONFIRMATION,
        ticket_id=message.ticket_id,
    )
    return reply.id


async def _keyword(
    uow: UnitOfWork,
    match: KeywordMatch,
    inbound: InboundSms,
    message: SmsMessage,
    phone: str,
    policy: SmsPolicy,
) -> int | None:
    """Apply a keyword; returns the reply queued (help, or the opt-out confirmation), if one was."""
    if match.keyword is SmsKeyword.STOP:
        added = await suppress(
            uow,
            phone,
            reason=REASON_KEYWORD if match.exact else REASON_REQUEST,
            customer_id=message.customer_id,
            keyword=match.word,
            phrase=match.phrase or None,
            message=None if match.exact else inbound.body,
        )
        # Once per opt-out: a second "stop texting me" from a number already out gets nothing.
        return await _confirm_opt_out(uow, match, inbound, message, policy) if added else None
    if match.keyword is SmsKeyword.START:
        await lift(uow, phone, customer_id=message.customer_id, keyword=match.word)
    elif policy.help_reply and await suppression_of(uow.session, phone) is None:
        reply = await queue_sms(
            uow,
            customer_id=message.customer_id,
            to=phone,
            from_=message.to_number or policy.default_from,
            body=policy.help_reply,
            kind=KIND_HELP,
            ticket_id=message.ticket_id,
        )
        return reply.id
    return None


async def receive_sms(
    uow: UnitOfWork, inbound: InboundSms, policy: SmsPolicy, now: datetime | None = None
) -> Received:
    """Store a text from a customer (once per MessageSid) and thread it; events go out on commit.
    A ticket it opens or reopens counts its times from ``now`` (the current time by default)."""
    existing = await text_by_sid(uow.session, inbound.message_sid)
    if existing is not None:
        return Received(existing, created=False)
    customer, phone = await sender_of(uow, inbound.from_number, policy.region)
    match = read_keyword(inbound, await suppression_of(uow.session, phone) is not None)
    keyword = match.keyword if match is not None else None
    opt_out = _opt_out_of(match) if match is not None and keyword is SmsKeyword.STOP else None
    kind = KIND_MESSAGE if match is None else KIND_KEYWORD if match.exact else KIND_OPT_OUT_REQUEST
    meta = {**({"keyword": keyword.value} if keyword else {}), **({"opt_out": opt_out} if opt_out else {})}
    message, created = await store_inbound(
        uow, inbound, customer_id=customer.id, phone=phone, kind=kind, meta=meta, now=now
    )
    if not created:  # the same text delivered twice at once: the other delivery stored it
        return Received(message, created=False)
    await lock_customer(uow.session, customer.id)
    ticket = await open_ticket_for_customer(uow.session, customer.id, source_channel=Channel.SMS)
    if ticket is None and match is None and policy.ticket_rule is TicketRule.EVERY_CONVERSATION:
        ticket = await open_sms_ticket(uow, customer, phone, policy.sla, now)
    if ticket is not None:
        await attach(uow, message, ticket, now)
        if match is None:
            await _reopen_waiting(uow, ticket, now)
        elif match.keyword in (SmsKeyword.STOP, SmsKeyword.START):
            await system_note(uow, ticket, _note(phone, match), now)
    reply_id = await _keyword(uow, match, inbound, message, phone, policy) if match else None
    agent_id = ticket.assignee_id if ticket is not None else customer.owner_id
    word = keyword.value if keyword else None
    uow.record(received_event(message, agent_id=agent_id, keyword=word, opt_out=opt_out))
    return Received(message, created=True, ticket=ticket, keyword=keyword, reply_id=reply_id)


async def open_unanswered(uow: UnitOfWork, policy: SmsPolicy, now: datetime | None = None) -> list[int]:
    """The no-answer rule: customers whose texts nobody answered within ``no_answer_minutes``
    get a ticket (or join their open SMS ticket) holding every unanswered text. Returns the
    tickets. Instances running this together share the work (the texts are locked, SKIP LOCKED).
    """
    now = now or utcnow()
    cutoff = now - timedelta(minutes=policy.no_answer_minutes)
    tickets: list[int] = []
    for customer_id in await unanswered_customers(uow.session, cutoff):
        rows = await unanswered_texts(uow.session, customer_id)
        customer = await uow.session.get(Customer, customer_id)
        if not rows or customer is None:
            continue
        ticket = await open_ticket_for_customer(uow.session, customer_id, source_channel=Channel.SMS)
        if ticket is None:
            ticket = await open_sms_ticket(uow, customer, rows[0].from_number, policy.sla, now)
        for row in rows:
            await attach(uow, row, ticket, now)
        await _reopen_waiting(uow, ticket, now)
        await system_note(
            uow,
            ticket,
            f"No agent answered within {policy.no_answer_minutes:g} minutes; {len(rows)} text(s) waiting.",
            now,
        )
        tickets.append(ticket.id)
    return tickets
