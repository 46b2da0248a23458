"""Attachments and raw messages on disk, addressed by their SHA-256 (the same bytes stored once)."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
from pathlib import Path

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._serial = itertools.count()
        self._tmp_prefix = f".tmp-{os.getpid()}-{secrets.token_hex(4)}-"

    def path_of(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError("not a SHA-256 digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomically, idempotently) and return its digest."""
        digest = hashlib.sha256(data).hexdigest()
        parent = os.path.join(self.root, digest[:2], digest[2:4])
        target = os.path.join(parent, digest)
        if os.path.exists(target):
            return digest
        # A name of our own (mkstemp draws random names and retries: slower), unique to this
        # store object and write, so concurrent writers of the same content stay apart.
        tmp = os.path.join(parent, f"{self._tmp_prefix}{next(self._serial)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(parent, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()
