"""Numbers that must not be called: the company's own list and the imported national registry."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, str_enum, utcnow


class DncSource(enum.StrEnum):
    API = "api"
    CSV = "csv"
    DISPOSITION = "disposition"
    OPT_OUT_DIGIT = "opt-out-digit"
    NATIONAL = "national"
    """A line of the imported national registry file (replaced whole by the next import)."""


class DoNotCall(Base):
    """One number on one list; a number may be on the national list and the company's own."""

    __tablename__ = "do_not_call"
    __table_args__ = (
        UniqueConstraint("e164", "source", name="uq_do_not_call_e164_source"),
        Index("ix_do_not_call_source", "source"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    e164: Mapped[str] = mapped_column(String(20))
    source: Mapped[DncSource] = mapped_column(str_enum(DncSource))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    file_date: Mapped[date | None] = mapped_column()
    """For the national list: the date of the registry file the number came from."""
