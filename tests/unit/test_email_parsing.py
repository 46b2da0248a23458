"""The fixture corpus of real-world mail shapes parses without loss (tests/fixtures/email)."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.email.bodies import html_to_text, sanitize_html, visible_reply
from channels.email.content_store import ContentStore
from channels.email.parsing import decode_bytes, parse_message
from crm_core.email_ports import InboundEmail
from crm_core.rules.email_loops import MailKind, classify

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
OUR_ID = "T1000-0123456789ab.5f3e2a1b9c0d7e6f@support.example.com"


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "blobs")


def parse(name: str, store: ContentStore, limit: int = 100_000) -> InboundEmail:
    return parse_message((FIXTURES / name).read_bytes(), store, max_attachment_bytes=limit)


def test_every_fixture_parses_and_keeps_the_raw_message(store: ContentStore) -> None:
    files = sorted(FIXTURES.glob("*.eml"))
    assert len(files) >= 20
    for path in files:
        mail = parse(path.name, store)
        assert mail.key, path.name
        assert mail.raw_sha256 is not None
        assert store.get(mail.raw_sha256) == path.read_bytes(), path.name


def test_rfc2047_headers_and_utf8_body(store: ContentStore) -> None:
    mail = parse("plain_utf8.eml", store)
    assert mail.subject == "Problema con la factura — ñandú"
    assert mail.from_name == "Ana María López"
    assert mail.from_address == "ana@example.org"
    assert mail.message_id == "CAF1plain.utf8@mail.example.org"
    assert "está mal" in mail.text
    assert mail.defects == ()


@pytest.mark.parametrize(
    ("name", "subject", "fragment"),
    [
        ("gb2312.eml", "发票问题", "发票金额不对"),
        ("gbk.eml", "订单查询", "订单状态"),
        ("big5.eml", "帳單問題", "帳單有誤"),
        ("shift_jis.eml", "請求書について", "請求書が届いていません"),
        ("iso2022jp.eml", "ログインできません", "よろしくお願いします"),
        ("autoreply_legacy.eml", "Out of office", "Я в отпуске"),
    ],
)
def test_legacy_charsets(store: ContentStore, name: str, subject: str, fragment: str) -> None:
    mail = parse(name, store)
    assert mail.subject == subject
    assert fragment in mail.text
    assert "\ufffd" not in mail.text


def test_unknown_charset_and_bad_bytes_are_replaced_and_noted(store: ContentStore) -> None:
    mail = parse("unknown_charset.eml", store)
    assert "café" in mail.text
    assert any("unknown charset" in d for d in mail.defects)
    text, defect = decode_bytes(b"\xff\xfe ok", "utf-8")
    assert text.endswith(" ok") and defect is not None


def test_malformed_mime_keeps_what_can_be_decoded(store: ContentStore) -> None:
    mail = parse("malformed.eml", store)
    assert mail.message_id == "malformed-1@example.org"
    assert mail.from_address == "broken@example.org"
    assert "Hello, this is broken base64" in mail.text
    assert mail.date is None
    assert any("CloseBoundaryNotFound" in d for d in mail.defects)
    assert [a.filename for a in mail.attachments] == ["data.bin"]


def test_html_is_sanitized_and_converted(store: ContentStore) -> None:
    mail = parse("alternative.eml", store)
    assert mail.html is not None
    assert "<script" not in mail.html and "onclick" not in mail.html and "javascript:" not in mail.html
    assert "account locked" in mail.text
    assert html_to_text("<p>a<br>b</p><style>x{}</style>") == "a\nb"
    assert "cid:img" in sanitize_html('<img src="cid:img">')


def test_cid_images_become_inline_attachments(store: ContentStore) -> None:
    mail = parse("related_cid.eml", store)
    (image,) = mail.attachments
    assert image.inline and image.content_id == "image001.png@01DA1234.ABCDEF00"
    assert image.sha256 is not None and store.get(image.sha256).startswith(b"\x89PNG")
    assert mail.html is not None and "cid:image001.png@01DA1234.ABCDEF00" in mail.html


def test_nested_message_winmail_and_calendar_are_attachments(store: ContentStore) -> None:
    nested = parse("nested_rfc822.eml", store)
    assert [(a.filename, a.content_type) for a in nested.attachments] == [("order.eml", "message/rfc822")]
    assert nested.attachments[0].sha256 and b"Total: 99.00" in store.get(nested.attachments[0].sha256)
    winmail = parse("winmail_dat.eml", store)
    assert winmail.attachments[0].filename == "winmail.dat"
    assert "Grüße" in winmail.text
    invite = parse("calendar_invite.eml", store)
    assert {a.content_type for a in invite.attachments} == {"text/calendar", "application/ics"}


def test_same_attachment_is_stored_once(store: ContentStore) -> None:
    first = parse("related_cid.eml", store)
    second = parse("related_cid.eml", store)
    assert first.attachments[0].sha256 == second.attachments[0].sha256
    digest = first.attachments[0].sha256
    assert digest is not None and len(list(store.root.rglob(digest))) == 1


def test_over_limit_attachment_is_skipped_not_the_message(store: ContentStore) -> None:
    mail = parse("attachment_large.eml", store, limit=100_000)
    (log,) = mail.attachments
    assert log.sha256 is None and log.skipped_reason and log.size == 300_000
    assert mail.text.startswith("Log attached")


@pytest.mark.parametrize("name", ["dsn_postfix.eml", "dsn_exim.eml", "dsn_exchange.eml"])
def test_bounces_from_several_mtas_name_our_message(store: ContentStore, name: str) -> None:
    mail = parse(name, store)
    assert mail.bounce is not None
    assert mail.bounce.original_message_ids == (OUR_ID,)
    assert mail.bounce.failed_recipients and "gone@" in mail.bounce.failed_recipients[0]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("autoreply_outlook.eml", MailKind.AUTO_REPLY),
        ("autoreply_gmail.eml", MailKind.AUTO_REPLY),
        ("autoreply_legacy.eml", MailKind.AUTO_REPLY),
        ("list_mail.eml", MailKind.LIST),
        ("plain_utf8.eml", MailKind.MESSAGE),
        ("calendar_invite.eml", MailKind.MESSAGE),
    ],
)
def test_auto_replies_and_list_mail_are_recognised(store: ContentStore, name: str, kind: MailKind) -> None:
    mail = parse(name, store)
    assert mail.bounce is None
    assert classify(mail.headers, mail.from_address) is kind


def test_robot_senders() -> None:
    assert classify({}, "MAILER-DAEMON@x.example") is MailKind.ROBOT
    assert classify({}, "no-reply@x.example") is MailKind.ROBOT
    assert classify({}, "noreply+abc@x.example") is MailKind.ROBOT
    assert classify({}, "nora@x.example") is MailKind.MESSAGE
    assert classify({"auto-submitted": "no"}, "ana@x.example") is MailKind.MESSAGE


def test_quoted_history_and_signature_are_trimmed(store: ContentStore) -> None:
    mail = parse("reply_quoted.eml", store)
    assert mail.visible_text == "The charge appears twice, see line 3 and 4."
    assert "wrote:" in mail.text
    assert mail.markers == ("T1000-0123456789ab",)
    html_reply = parse("reply_outlook_html.eml", store)
    assert html_reply.visible_text == "Here is the second screenshot."
    assert html_reply.markers == ("T1000-0123456789ab",)
    assert visible_reply("> only quoted\n> text") == "> only quoted\n> text"


def test_missing_message_id_gets_a_stable_key(store: ContentStore) -> None:
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first = parse_message(raw, store, max_attachment_bytes=1000)
    relayed = parse_message(
        b"Received: by another.example\r\nDelivered-To: sales@example.com\r\n" + raw,
        store,
        max_attachment_bytes=1000,
    )
    assert first.message_id is None
    assert first.key.startswith("nomsgid:") and first.key == relayed.key
    changed = parse_message(raw.replace(b"forgets", b"loses"), store, max_attachment_bytes=1000)
    assert changed.key != first.key


def test_acknowledgment_templates_are_sandboxed_and_per_language() -> None:
    from crm_core.errors import InvalidInput
    from crm_core.services.email_acks import BUILT_IN, AckTemplate, pick_template, render

    own = {"fr": AckTemplate("Bien reçu {{ subject_token }}", "Ticket {{ ticket_number }}")}
    assert pick_template(own, ["fr-CA", None], "en").subject.startswith("Bien reçu")
    assert pick_template(own, [None, "de"], "en") == BUILT_IN["de"]
    assert pick_template(own, [None, None], "xx") == BUILT_IN["en"]
    subject, body = render(own["fr"], {"subject_token": "[#7]", "ticket_number": 7})
    assert (subject, body) == ("Bien reçu [#7]", "Ticket 7")
    escape = AckTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}", "x")
    with pytest.raises(InvalidInput):
        render(escape, {})
    with pytest.raises(InvalidInput):
        render(AckTemplate("{{ missing }}", "x"), {})
