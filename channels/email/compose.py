"""Outbound MIME with the email package: text (+ HTML alternative), attachments, threading headers."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from channels.email.content_store import ContentStore
from crm_core.email_ports import OutboundEmail


def _address(address: str, name: str | None) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def compose(email: OutboundEmail, store: ContentStore | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _address(email.from_address, email.from_name)
    msg["To"] = ", ".join(email.to)
    if email.cc:
        msg["Cc"] = ", ".join(email.cc)
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(email.date)
    msg["Message-ID"] = f"<{email.message_id}>"
    if email.in_reply_to:
        msg["In-Reply-To"] = f"<{email.in_reply_to}>"
    if email.references:
        msg["References"] = " ".join(f"<{r}>" for r in email.references)
    for name, value in email.headers.items():
        msg[name] = value
    msg.set_content(email.text)
    if email.html:
        msg.add_alternative(email.html, subtype="html")
    if store is not None:
        for item in email.attachments:
            if item.sha256 is None:
                continue
            maintype, _, subtype = item.content_type.partition("/")
            msg.add_attachment(
                store.get(item.sha256),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=item.filename,
            )
    return msg
