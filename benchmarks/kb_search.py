"""Knowledge base search benchmark: search latency over 10k published articles, English and Chinese.

It creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server (PostgreSQL),
migrates it (so the search indexes are exactly the migration's: English full text and pg_trgm),
loads 10,000 published articles (about 60% English, 40% Chinese; 70% public; titles of 3-7 words,
bodies of 80-250 words drawn from a Zipf-like vocabulary of real and made-up words) and runs
VACUUM ANALYZE.

What is timed is ``crm_core.services.knowledge_search.search_articles`` in a unit of work's session,
as the API, the help centre and the ticket suggestions call it (top 10, best first), one search
after another: one English word, two English words, a two-character Chinese word (under the
trigram length: a substring scan), a four-character Chinese phrase, a Chinese sentence (cut into
trigram pieces, as a ticket's body is), and a mixed English and Chinese query, alternately for
the staff and the public. 50 warm-up searches, then 1,000 timed (200 with ``--quick``, which also
loads 2,000 articles; ``n_articles`` and ``quick`` say so). The database is dropped at the end,
also on failure.

    python benchmarks/kb_search.py [--quick] [--seed N] [--explain]

Progress goes to stderr; the last line of stdout is one JSON object with the figures
(``kb_search_p95_ms_10k``; target <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from _load import DEFAULT_URL, create_database, drop_database, say
from sqlalchemy import insert, text
from sqlalchemy.engine import URL, make_url

from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import ArticleStatus, ArticleVisibility, KbArticle
from crm_core.services.knowledge_search import PG_TEXT, PG_VECTOR, Audience, search_articles

WARMUP = 50
SEARCHES = 1_000
QUICK_SEARCHES = 200
ARTICLES = 10_000
QUICK_ARTICLES = 2_000
BATCH = 1_000
P95_TARGET_MS = 50.0

ENGLISH = [
    "account",
    "billing",
    "invoice",
    "refund",
    "payment",
    "card",
    "charge",
    "password",
    "reset",
    "login",
    "router",
    "modem",
    "wifi",
    "network",
    "outage",
    "signal",
    "voicemail",
    "call",
    "transfer",
    "queue",
    "agent",
    "ticket",
    "email",
    "reply",
    "attachment",
    "order",
    "delivery",
    "shipping",
    "return",
    "exchange",
    "warranty",
    "repair",
    "device",
    "phone",
    "app",
    "update",
    "install",
    "settings",
    "privacy",
    "security",
    "profile",
    "address",
    "contract",
    "plan",
    "upgrade",
    "cancel",
    "renewal",
    "discount",
    "coupon",
    "store",
    "hours",
    "holiday",
    "support",
    "chat",
    "message",
    "notification",
    "report",
    "export",
    "import",
    "error",
    "crash",
    "slow",
    "battery",
]
CHINESE = [
    "账户",
    "账单",
    "发票",
    "退款",
    "付款",
    "银行",
    "密码",
    "重置",
    "登录",
    "路由",
    "网络",
    "信号",
    "语音",
    "信箱",
    "电话",
    "转接",
    "排队",
    "客服",
    "工单",
    "邮件",
    "回复",
    "附件",
    "订单",
    "配送",
    "快递",
    "退货",
    "换货",
    "保修",
    "维修",
    "设备",
    "手机",
    "应用",
    "更新",
    "安装",
    "设置",
    "隐私",
    "安全",
    "地址",
    "合同",
    "套餐",
    "升级",
    "取消",
    "续约",
    "折扣",
    "优惠",
    "门店",
    "营业",
    "假期",
    "支持",
    "聊天",
    "消息",
    "通知",
    "报表",
    "导出",
    "导入",
    "错误",
    "崩溃",
    "电池",
    "充值",
    "流量",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "to",
    "vi",
    "ze",
    "por",
    "tan",
    "del",
    "fin",
    "gar",
    "hul",
    "mor",
    "qua",
    "ser",
    "tur",
    "wex",
]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words = set(ENGLISH)
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def zipf_pick(rng: random.Random, words: Sequence[str]) -> str:
    return words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)]


def english_article(rng: random.Random, words: Sequence[str]) -> tuple[str, str]:
    title = " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(3, 7))).capitalize()
    sentences = []
    for _ in range(rng.randint(8, 25)):
        sentences.append(
            " ".join(zipf_pick(rng, words) for _ in range(rng.randint(6, 14))).capitalize() + "."
        )
    return title, " ".join(sentences)


HANZI = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    "对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头"
    "面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向"
    "情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信"
    "北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难"
    "神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物"
    "台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指"
    "思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步"
    "完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音"
)


def chinese_words(rng: random.Random, size: int) -> list[str]:
    """The real words first (the head of the distribution), then made-up pairs of common characters."""
    words = list(CHINESE)
    seen = set(words)
    while len(words) < size:
        pair = rng.choice(HANZI) + rng.choice(HANZI)
        if pair not in seen:
            seen.add(pair)
            words.append(pair)
    return words


def chinese_article(rng: random.Random, words: Sequence[str]) -> tuple[str, str]:
    title = "".join(rng.choice(CHINESE) for _ in range(rng.randint(2, 5)))
    sentences = [
        "".join(zipf_pick(rng, words) for _ in range(rng.randint(6, 14))) + "。"
        for _ in range(rng.randint(8, 20))
    ]
    return title, "".join(sentences)


def queries(rng: random.Random) -> list[tuple[str, Callable[[], str]]]:
    return [
        ("english_word", lambda: rng.choice(ENGLISH)),
        ("english_two_words", lambda: f"{rng.choice(ENGLISH)} {rng.choice(ENGLISH)}"),
        ("chinese_two_chars", lambda: rng.choice(CHINESE)),
        ("chinese_phrase", lambda: rng.choice(CHINESE) + rng.choice(CHINESE)),
        ("chinese_sentence", lambda: "我的" + "".join(rng.choice(CHINESE) for _ in range(4)) + "怎么办"),
        ("mixed", lambda: f"{rng.choice(ENGLISH)} {rng.choice(CHINESE)}"),
    ]


async def load(uow: UnitOfWorkFactory, n: int, rng: random.Random) -> float:
    started = time.perf_counter()
    words = vocabulary(rng, 3_000)
    zh_words = chinese_words(rng, 3_000)
    now = datetime.now(UTC)
    async with uow() as unit:
        for start in range(0, n, BATCH):
            rows: list[dict[str, Any]] = []
            for _ in range(min(BATCH, n - start)):
                zh = rng.random() < 0.4
                title, body = chinese_article(rng, zh_words) if zh else english_article(rng, words)
                rows.append(
                    {
                        "language": "zh-CN" if zh else "en",
                        "visibility": ArticleVisibility.PUBLIC
                        if rng.random() < 0.7
                        else ArticleVisibility.INTERNAL,
                        "status": ArticleStatus.PUBLISHED,
                        "title": title,
                        "body": body,
                        "version": 1,
                        "published_title": title,
                        "published_body": body,
                        "published_version": 1,
                        "published_at": now,
                        "solved_count": rng.randint(0, 50),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            await unit.session.execute(insert(KbArticle), rows)
        await unit.commit()
    return time.perf_counter() - started


async def explain(uow: UnitOfWorkFactory) -> None:
    async with uow() as unit:
        for label, where in (
            ("full text", f"{PG_VECTOR} @@ plainto_tsquery('english', 'refund')"),
            ("trigram", f"{PG_TEXT} LIKE '%退款政策%'"),
        ):
            rows = await unit.session.execute(
                text(f"EXPLAIN ANALYZE SELECT id FROM kb_articles WHERE {where}")
            )
            say(f"{label}:\n" + "\n".join(r[0] for r in rows))


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 articles, 200 searches")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--explain", action="store_true", help="print the plans of both index paths")
    args = parser.parse_args(argv)
    base: URL = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    n = QUICK_ARTICLES if args.quick else ARTICLES
    searches = QUICK_SEARCHES if args.quick else SEARCHES
    rng = random.Random(args.seed)
    name = f"cc_bench_{secrets.token_hex(4)}"
    await create_database(base, name)
    engine = create_engine(base.set(database=name).render_as_string(hide_password=False))
    times: dict[str, list[float]] = {}
    try:
        await migrate(engine)

        class _Quiet:
            async def publish(self, events: Any) -> None:
                return None

        uow = UnitOfWorkFactory(engine, _Quiet())
        load_s = await load(uow, n, rng)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE kb_articles"))
        say(f"loaded {n:,} articles in {load_s:.1f} s")
        if args.explain:
            await explain(uow)
        kinds = queries(rng)
        hits_total = 0
        for i in range(WARMUP + searches):
            kind, make = kinds[i % len(kinds)]
            audience = Audience.PUBLIC if i % 2 else Audience.STAFF
            query = make()
            started = time.perf_counter()
            async with uow() as unit:
                hits = await search_articles(unit.session, query, audience, limit=10)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= WARMUP:
                times.setdefault(kind, []).append(elapsed)
                hits_total += len(hits)
    finally:
        await engine.dispose()
        await drop_database(base, name)
        say(f"dropped database {name}")

    every = sorted(t for ts in times.values() for t in ts)

    def pct(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]

    p95 = pct(every, 95)
    for kind, ts in times.items():
        say(f"{kind}: p50 {pct(ts, 50):.2f} ms, p95 {pct(ts, 95):.2f} ms")
    return {
        "kb_search_p95_ms_10k": round(p95, 2),
        "kb_search_p50_ms_10k": round(pct(every, 50), 2),
        "kb_search_p99_ms_10k": round(pct(every, 99), 2),
        "p95_ms_by_query": {kind: round(pct(ts, 95), 2) for kind, ts in times.items()},
        "mean_hits": round(hits_total / len(every), 2),
        "n_articles": n,
        "searches": searches,
        "quick": args.quick,
        "load_s": round(load_s, 1),
        "target_p95_met": p95 <= P95_TARGET_MS,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    sys.stdout.write(json.dumps(figures) + "\n")
