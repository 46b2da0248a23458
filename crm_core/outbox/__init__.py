"""The one outbox life cycle every outbound message follows, whichever table holds it (texts in
``sms_messages``, mail in ``email_messages``):

queued → claimed (:func:`crm_core.outbox.claim.claim`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
compare-and-set on SQLite's single writer) → the producer's suppression check and the sender's
throttle (:mod:`crm_core.outbox.steps`) → handed to the provider, or by the provider's
:class:`~crm_core.errors.DeliveryError`: retried at a time the one retry rule gives
(:mod:`crm_core.outbox.rules`), unconfirmed (settled by asking the provider, never sent again
blindly) or failed.
"""
