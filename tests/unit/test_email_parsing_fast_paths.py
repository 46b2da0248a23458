"""The parser's shortcuts give the same answers as the plain standard library."""

from __future__ import annotations

import os
from email import policy
from email.parser import BytesParser
from pathlib import Path

from channels.email.content_store import ContentStore
from channels.email.header_cache import CachedHeaderRegistry, cached_policy
from channels.email.parsing import header_message_key, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"


def _head(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


def test_cached_headers_read_like_policy_default() -> None:
    cached = cached_policy()
    for path in sorted(FIXTURES.glob("*.eml")):
        raw = path.read_bytes()
        plain = BytesParser(policy=policy.default).parsebytes(raw)
        reused = BytesParser(policy=cached).parsebytes(raw)
        for name in {n for n, _ in plain.raw_items()}:
            try:
                expected = [str(v) for v in plain.get_all(name, [])]
            except Exception as exc:  # the same malformed header fails the same way
                expected = [type(exc).__name__]
            try:
                got = [str(v) for v in reused.get_all(name, [])]
            except Exception as exc:
                got = [type(exc).__name__]
            assert got == expected, (path.name, name)
        assert [p.get_content_type() for p in reused.walk()] == [p.get_content_type() for p in plain.walk()]


def test_a_repeated_header_is_parsed_once_and_the_cache_is_bounded() -> None:
    registry = CachedHeaderRegistry(max_entries=2)
    first = registry("Content-Type", "text/plain; charset=utf-8")
    assert registry("Content-Type", "text/plain; charset=utf-8") is first
    assert first.content_type == "text/plain" and first.params["charset"] == "utf-8"
    registry("To", "a@example.com")
    registry("Subject", "third value starts over")
    again = registry("Content-Type", "text/plain; charset=utf-8")
    assert again is not first and again == first


def test_header_block_key_matches_the_parsed_key(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "blobs")
    checked = 0
    for path in sorted(FIXTURES.glob("*.eml")):
        raw = path.read_bytes()
        key = header_message_key(_head(raw))
        parsed = parse_message(raw, store, max_attachment_bytes=100_000)
        if parsed.message_id is None:
            assert key is None, path.name
        else:
            assert key == parsed.key, path.name
            checked += 1
    assert checked >= 15
    folded = b"Subject: x\r\nMessage-ID:\r\n <folded@example.com>\r\nTo: y@example.com\r\n\r\n"
    assert header_message_key(folded) == "folded@example.com"
    assert header_message_key(b"Subject: none\r\n\r\n") is None


def test_content_store_writes_once_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "blobs")
    digest = store.put(b"same bytes")
    assert store.put(b"same bytes") == digest
    assert ContentStore(tmp_path / "blobs").put(b"same bytes") == digest
    assert store.get(digest) == b"same bytes"
    files = [name for _, _, names in os.walk(tmp_path) for name in names]
    assert files == [digest]
