"""Email: mailboxes watched over IMAP into tickets, replies and acknowledgments out through the
outbox over SMTP, and the quarantine of mail that could not be stored.

``desk`` (what routes and background work share, quarantine retry and dismissal), ``wiring``
(settings into policies, the IMAP watchers and the outbox sender started and stopped with the
application) and ``routes`` (a ticket's mail, attachments and raw messages, and the quarantine).
"""
