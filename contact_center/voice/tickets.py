"""The tickets the call desk opens by itself: a callback for a missed call, one for a voicemail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.voice.offers import locked_call
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.models import Interaction, Ticket
from crm_core.ports import Clock
from crm_core.services.tickets import open_ticket, open_ticket_for_customer, system_note
from crm_core.types import Channel, Priority
from crm_core.voice import Recording

if TYPE_CHECKING:
    from contact_center.voice.desk import CallPolicy

CALLBACK = "callback"
VOICEMAIL = "voicemail"


class CallTickets:
    def __init__(self, uow: UnitOfWorkFactory, policy: CallPolicy, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def recording_ready(self, recording: Recording) -> None:
        async with self._uow() as uow:
            interaction = await locked_call(uow, recording.call_sid)
            if interaction is None:
                return
            if interaction.meta.get("recording_url") == recording.recording_url:
                return
            interaction.meta = {
                **interaction.meta,
                "recording_url": recording.recording_url,
                "recording_sid": recording.recording_sid,
                "recording_seconds": recording.duration_seconds,
            }
            if interaction.ticket_id is None:
                caller = interaction.meta.get("from") or "a withheld number"
                ticket = await self._system_ticket(uow, interaction, f"Voicemail from {caller}", VOICEMAIL)
                interaction.ticket_id = ticket.id
                await system_note(
                    uow, ticket, f"Voicemail recording: {recording.recording_url}", self._clock.now()
                )
            await uow.commit()

    async def _system_ticket(
        self, uow: UnitOfWork, interaction: Interaction, subject: str, category: str
    ) -> Ticket:
        """A ticket the call desk opens by itself for the caller (high priority, source voice)."""
        return await open_ticket(
            uow,
            None,
            customer_id=interaction.customer_id,
            sla=self._policy.sla,
            subject=subject,
            source_channel=Channel.VOICE,
            category=category,
            priority=Priority.HIGH,
            now=self._clock.now(),
        )

    async def callback_ticket(self, uow: UnitOfWork, interaction: Interaction) -> None:
        """A missed call: join the customer's open callback ticket, or open one."""
        caller = interaction.meta.get("from") or "a withheld number"
        ticket = await open_ticket_for_customer(uow.session, interaction.customer_id, category=CALLBACK)
        if ticket is None:
            ticket = await self._system_ticket(uow, interaction, f"Call back {caller}", CALLBACK)
        await system_note(
            uow,
            ticket,
            f"Missed call from {caller} at {interaction.started_at:%Y-%m-%d %H:%M} UTC",
            self._clock.now(),
        )
        interaction.ticket_id = ticket.id
