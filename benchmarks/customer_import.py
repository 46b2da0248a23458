"""Customer CSV import benchmark: rows a second through ``customer_import.import_customers`` (crm_core).

It creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server, migrates it
and generates a CSV file as an export from another CRM would look: 100,000 rows (``--quick``:
10,000) with names, companies, one or two phones, an email, tags, consent columns and a custom
field; 3% repeat an earlier row's phone or email (they complete that customer), 1% have an
invalid phone (rejected with their line), 10% name an owner among 20 agents. The file is imported
once, as the command line does it (no actor, events published to nobody), and the import is then
checked: every row is created, updated, a duplicate or rejected, and the database holds exactly
the created customers. The database is dropped at the end, also on failure.

    python benchmarks/customer_import.py [--quick] [--seed N]

Progress goes to stderr; the last line of stdout is one JSON object: ``rows``, ``seconds``,
``rows_per_s``, ``ms_per_row``, ``cpu_ms_per_row`` (this process), the outcome counts, and the
customers, phones and emails in the database afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _load import DEFAULT_URL, create_database, drop_database, say
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import Agent, Customer, CustomerEmail, CustomerPhone
from crm_core.services.customer_import import import_customers

N_ROWS = 100_000
QUICK_ROWS = 10_000
N_OWNERS = 20
HEADER = "display_name,company,phones,emails,owner,tags,segment,consent_sms,consent_email,custom.account_no"
AREAS = (201, 212, 305, 312, 404, 415, 503, 617, 702, 713, 718, 818, 917)


class Nobody:
    """The event publisher of a command-line import: nothing listens."""

    async def publish(self, events: Sequence[Any]) -> None:
        return None


def csv_file(n: int, rng: random.Random) -> tuple[bytes, int]:
    """The file, and how many rows carry an invalid phone."""
    out = io.StringIO()
    out.write(HEADER + "\r\n")
    phones: list[str] = []
    emails: list[str] = []
    invalid = 0
    for i in range(n):
        roll = rng.random()
        name = f"Customer {i:07d}"
        if roll < 0.03 and phones:
            earlier = rng.randrange(len(phones))  # the same person again
            phone, email = phones[earlier], emails[earlier]
        elif roll < 0.04:
            phone, email, invalid = "555-01", f"c{i}@example.com", invalid + 1
        else:
            phone = f"({rng.choice(AREAS)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
            email = f"customer{i}@example.com"
            phones.append(phone)
            emails.append(email)
        if rng.random() < 0.2:
            phone += f";{rng.choice(AREAS)}-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        owner = f"owner{rng.randrange(N_OWNERS)}" if rng.random() < 0.1 else ""
        tags = ";".join(rng.sample(["vip", "new", "churn-risk", "b2b", "newsletter"], rng.randint(0, 2)))
        segment = rng.choice(["", "smb", "enterprise", "consumer"])
        consent = rng.choice(["", "yes", "no"])
        out.write(
            f'{name},"Company {i % 5000}",{phone},{email},{owner},{tags},{segment},{consent},{consent},'
            f"A-{i}\r\n"
        )
    return out.getvalue().encode(), invalid


async def make_owners(uow: UnitOfWorkFactory) -> None:
    async with uow() as unit:
        for i in range(N_OWNERS):
            unit.session.add(
                Agent(
                    login=f"owner{i}",
                    display_name=f"Owner {i}",
                    email=f"owner{i}@example.com",
                    password_hash="x",
                )
            )
        await unit.commit()


async def count(uow: UnitOfWorkFactory, model: Any) -> int:
    async with uow() as unit:
        return int(await unit.session.scalar(select(func.count()).select_from(model)) or 0)


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows instead of {N_ROWS:,}")
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args(argv)
    n = QUICK_ROWS if args.quick else N_ROWS
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    name = f"cc_bench_{secrets.token_hex(4)}"
    data, invalid = csv_file(n, random.Random(args.seed))
    say(f"{n:,} rows, {len(data) / 1e6:.1f} MB; creating database {name}")
    await create_database(base, name)
    try:
        engine = create_engine(base.set(database=name).render_as_string(hide_password=False))
        try:
            await migrate(engine)
            uow = UnitOfWorkFactory(engine, Nobody())
            await make_owners(uow)
            say("importing")
            wall, cpu = time.perf_counter(), time.process_time()
            result = await import_customers(uow, io.BytesIO(data), actor=None, region="US")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            figures = {
                "rows": n,
                "seconds": round(wall, 2),
                "rows_per_s": round(n / wall),
                "ms_per_row": round(1000 * wall / n, 3),
                "cpu_ms_per_row": round(1000 * cpu / n, 3),
                "created": result.created,
                "updated": result.updated,
                "duplicates": result.duplicates,
                "rejected": len(result.rejected),
                "invalid_in_file": invalid,
                "customers": await count(uow, Customer),
                "phones": await count(uow, CustomerPhone),
                "emails": await count(uow, CustomerEmail),
            }
        finally:
            await engine.dispose()
    finally:
        await drop_database(base, name)
        say(f"dropped database {name}")
    accounted = figures["created"] + figures["updated"] + figures["duplicates"] + figures["rejected"]
    if accounted != n or figures["customers"] != figures["created"] or figures["rejected"] < invalid:
        raise SystemExit(f"the import does not add up: {json.dumps(figures)}")
    say(f"{figures['rows_per_s']:,} rows/s ({figures['ms_per_row']} ms a row)")
    return figures


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(main())) + "\n")
