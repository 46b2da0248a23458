"""The one outbox every outbound message goes through: a row in ``outbox``
(:class:`crm_core.models.outbox.OutboxEntry`) per text or mail, written with the message by its
producer (:func:`crm_core.services.sms_outbound.queue_sms`,
:func:`crm_core.services.email_outbound.queue_email` / ``queue_emails``) in the caller's unit of
work, under one idempotency key unique across channels. The message row stays what agents see;
its status is copied from here.

queued → claimed (:func:`crm_core.outbox.claim.claim`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
compare-and-set on SQLite's single writer) → the producer's suppression check and the sender's
throttle (:mod:`crm_core.outbox.steps`) → sent (handed to the provider) or refused (suppressed),
or by the provider's :class:`~crm_core.errors.DeliveryError`: queued again at a time the one retry
rule gives (:mod:`crm_core.outbox.rules`), unconfirmed (settled by asking the provider, never
sent again blindly) or failed.
"""
