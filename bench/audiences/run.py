"""Audiences (issue 16): 100,000 followers over 20 areas, 5 children's age groups and 7
languages.

1. The recipient count of a 3-dimension audience (categories × areas × age groups ×
   languages, with the per-version breakdown the screens show: ``audience_count``), asked
   ``--queries`` times with varied choices in one Django process against the database.
   Goal: p95 ≤ 100 ms on PostgreSQL.
2. A 100,000-recipient targeted send with 3 language versions (English, 中文, Tiếng Việt;
   everyone else Japanese) through ``broadcast_send`` in this process against the LINE
   sandbox (in this process too), with LINE faults on the way: a 500 after acceptance on
   three multicasts and a 503 on one. Goal: every follower exactly one request, carrying
   their language's version (or Japanese), every multicast with the broadcast's aggregation
   unit.

    .venv/bin/python bench/audiences/run.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_audiences
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import common

CATEGORY = "childcare_education"
COUNT_P95_GOAL_MS = 100.0
VERSIONS = {
    "en": "Notice from Kashiwa City.",
    "zh": "柏市的通知。",
    "vi": "Thông báo từ thành phố Kashiwa.",
}
JA_TEXT = "【柏市】子育て支援のお知らせです。"


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--followers", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--seed", type=int, default=16)
    args = p.parse_args()
    db = common.BenchDatabase("audiences", args.database_url, keep=args.keep)
    db.create()
    run = common.run_dir("audiences")
    sandbox = common.start_sandbox()
    env = common.bench_env(
        db=db,
        sandbox_url=sandbox.url,
        run=run,
        redis_url=args.redis_url,
        SEND_WINDOW_START="00:00",
        SEND_WINDOW_END="23:59",
    )
    common.configure(env)
    try:
        report = measure(args, db, sandbox)
    finally:
        sandbox.stop()
        db.drop()
    print(report)


def load(n: int, rng: random.Random, analyze: bool) -> dict[str, Any]:
    """n followers of one category; 90 % chose one of 20 areas, 60 % one or two age groups,
    35 % a language (one of 7). Returns each follower's language code (or None)."""
    from django.db import connection, transaction

    from broadcasts.models import (
        AgeGroup,
        Area,
        Follower,
        FollowerAgeGroup,
        FollowerArea,
        FollowerLanguage,
        Language,
    )
    from broadcasts.services.audiences import followers_bits_rebuild
    from line_sandbox import synthetic_user_id

    ids = [synthetic_user_id(3_000_000 + i) for i in range(n)]
    common.make_followers(ids, CATEGORY, analyze=False)
    existing = Area.objects.count()
    for i in range(20 - existing):  # one by one: each gets its 集計番号 (bit) on create
        Area.objects.create(code=f"bench-{i:02d}", label=f"ベンチ地区{i:02d}", sort_order=100 + i)
    areas = list(Area.objects.values_list("pk", flat=True))
    ages = list(AgeGroup.objects.values_list("pk", flat=True))
    languages = dict(Language.objects.values_list("pk", "code"))
    assert len(areas) == 20 and len(ages) == 5 and len(languages) == 7
    pks = list(Follower.objects.order_by("pk").values_list("pk", "line_user_id"))
    lang_of: dict[str, str | None] = {}
    area_rows, age_rows, lang_rows = [], [], []
    for pk, uid in pks:
        if rng.random() < 0.9:
            area_rows.append(FollowerArea(follower_id=pk, area_id=rng.choice(areas)))
        if rng.random() < 0.6:
            for age in rng.sample(ages, rng.choice((1, 1, 2))):
                age_rows.append(FollowerAgeGroup(follower_id=pk, age_group_id=age))
        lang_of[uid] = None
        if rng.random() < 0.35:
            lang_pk = rng.choice(list(languages))
            lang_rows.append(FollowerLanguage(follower_id=pk, language_id=lang_pk))
            lang_of[uid] = languages[lang_pk]
    with transaction.atomic():
        FollowerArea.objects.bulk_create(area_rows, batch_size=5000)
        FollowerAgeGroup.objects.bulk_create(age_rows, batch_size=5000)
        FollowerLanguage.objects.bulk_create(lang_rows, batch_size=5000)
    # The choices were loaded in bulk, not tap by tap through the services: copy them onto
    # the follower rows as migration 0016 does (one UPDATE … FROM per dimension).
    started = time.perf_counter()
    with transaction.atomic():
        followers_bits_rebuild()
    rebuild_s = time.perf_counter() - started
    vacuum_s = 0.0
    if analyze and connection.vendor == "postgresql":
        # What production's autovacuum does shortly after such a load: the rebuild rewrote
        # every follower row (dead tuples, an unset visibility map), and the planner needs
        # statistics of the new columns.
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        vacuum_s = time.perf_counter() - started
    return {
        "ids": ids,
        "lang_of": lang_of,
        "areas": areas,
        "ages": ages,
        "languages": languages,
        "rebuild_s": rebuild_s,
        "vacuum_s": vacuum_s,
    }


def count_queries(args: Any, data: dict[str, Any], rng: random.Random) -> list[float]:
    from broadcasts.models import Category
    from broadcasts.selectors import audiences as audience_selectors

    category = Category.objects.get(code=CATEGORY).pk
    codes = sorted(data["languages"].values())
    times = []
    for n in range(args.queries + 5):
        spec = audience_selectors.AudienceSpec(
            audience="subscribers",
            category_ids=(category,),
            area_ids=tuple(sorted(rng.sample(data["areas"], rng.randint(1, 5)))),
            age_group_ids=tuple(sorted(rng.sample(data["ages"], rng.randint(1, 3)))),
            language_codes=tuple(sorted(rng.sample(codes, rng.randint(1, 4)))),
            include_unset=bool(n % 2),
            variant_codes=("en", "vi", "zh"),
        )
        started = time.perf_counter()
        audience_selectors.audience_count(spec)
        elapsed = (time.perf_counter() - started) * 1000
        if n >= 5:  # the first few warm the connection and the plan cache
            times.append(elapsed)
    return times


def baseline_queries(args: Any) -> list[float]:
    """The same number of counts of the category's subscribers alone (the composer's count,
    over ``category_bits`` too): the floor the machine's load puts under any count."""
    from broadcasts import selectors
    from broadcasts.models import Category

    category = Category.objects.get(code=CATEGORY).pk
    times = []
    for n in range(args.queries + 5):
        started = time.perf_counter()
        selectors.recipient_count("subscribers", [category])
        if n >= 5:
            times.append((time.perf_counter() - started) * 1000)
    return times


def targeted_send(sandbox: Any, staff: tuple[Any, Any], data: dict[str, Any]) -> dict[str, Any]:
    from broadcasts import services
    from broadcasts.models import Broadcast, Category
    from broadcasts.services import audiences, sending

    author, approver = staff
    broadcast = services.broadcast_create(
        author=author,
        title="ベンチ 言語版つき 10万人",
        categories=list(Category.objects.filter(code=CATEGORY)),
        messages=[{"type": "text", "text": JA_TEXT}],
        audience=Broadcast.Audience.SUBSCRIBERS,
        priority=Broadcast.Priority.NORMAL,
    )
    audiences.broadcast_targeting_set(
        broadcast=broadcast,
        actor=author,
        areas=[],
        age_groups=[],
        languages=[],
        include_unset=True,
        variants={code: [{"type": "text", "text": t}] for code, t in VERSIONS.items()},
    )
    services.broadcast_submit(broadcast=broadcast, actor=author)
    services.broadcast_approve(broadcast=broadcast, actor=approver)
    sandbox.state.reset()
    sandbox.state.add_followers(user_ids=data["ids"])
    sandbox.state.set_fault(common.MULTICAST, 500, mode="accept_then_fail", count=3)
    sandbox.state.set_fault(common.MULTICAST, 503, count=1)
    claimed = sending.broadcasts_dispatch_due().claimed
    if claimed != [broadcast.pk]:
        raise SystemExit(f"the dispatcher claimed {claimed}, expected [{broadcast.pk}]")
    started = time.perf_counter()
    outcome = sending.broadcast_send(broadcast_id=broadcast.pk, sleep=lambda _s: None)
    total = time.perf_counter() - started
    got: Counter[str] = Counter()
    wrong = 0
    text_for = {code: t for code, t in VERSIONS.items()}
    units = set()
    multicasts = sandbox.state.deliveries(endpoint="multicast")
    for delivery in multicasts:
        units.add(delivery.aggregation_units)
        for uid in delivery.recipients:
            got[uid] += 1
            want = text_for.get(data["lang_of"][uid] or "", JA_TEXT)
            if delivery.messages[0]["text"] != want:
                wrong += 1
    per_version = Counter(
        text for d in multicasts for text in [d.messages[0]["text"]] for _ in d.recipients
    )
    return {
        "outcome": outcome.status,
        "total": total,
        "requests": len(multicasts),
        "once": set(got) == set(data["ids"]) and set(got.values()) == {1},
        "wrong": wrong,
        "units": units,
        "unit": f"kashiwa_b{broadcast.pk}",
        "retried_409": broadcast.deliveries.filter(http_status=409).count(),
        "per_version": per_version,
    }


def measure(args: Any, db: common.BenchDatabase, sandbox: Any) -> str:
    lines: list[str] = []
    say = lines.append
    rng = random.Random(args.seed)
    migrate_s = common.migrate()
    from django.utils import timezone

    common.open_today_if_closed(timezone.now().astimezone(common.JST).date())
    staff = common.make_staff()
    with common.timed() as t_load:
        data = load(args.followers, rng, analyze=not args.no_analyze)
    say("# audiences — 3-dimension counts and a targeted send with 3 language versions")
    say(f"setup: {common.describe_setup(db, args.redis_url)}")
    say(
        f"prep (not measured): migrate {migrate_s:.1f} s, {args.followers:,} followers with "
        f"areas / age groups / languages loaded in {t_load[0]:.1f} s (of which "
        f"followers_bits_rebuild {data['rebuild_s']:.1f} s, VACUUM ANALYZE "
        f"{data['vacuum_s']:.1f} s)"
    )
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    base = baseline_queries(args)
    times = count_queries(args, data, rng)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    p50, p95 = common.percentile(times, 50), common.percentile(times, 95)
    say("")
    say(
        f"## 1. audience_count (one Django process, one query per count, {len(times)} "
        "varied 3-dimension audiences incl. the per-version breakdown)"
    )
    say(f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms")
    say(
        f"baseline, the category's subscribers only (the composer's count): p50 "
        f"{common.percentile(base, 50):.1f} ms, p95 {common.percentile(base, 95):.1f} ms; "
        f"load average before: {load_before} on {os.cpu_count()} CPUs"
    )
    say(f"load average after the counts: {load_after}")
    send = targeted_send(sandbox, staff, data)
    say("")
    say(
        "## 2. targeted send, 3 language versions (this process: broadcast_send with its "
        "sending threads; the sandbox in this process too; a 500 after acceptance on 3 "
        "multicasts, a 503 on 1)"
    )
    say(
        f"outcome {send['outcome']} in {send['total']:.2f} s; {send['requests']} multicasts; "
        f"{send['retried_409']} answered 409 on retry (accepted before); load average "
        f"after the send: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    say(
        "recipients per version: "
        + ", ".join(f"{n:,} × {t[:12]}…" for t, n in send["per_version"].most_common())
    )
    say(f"aggregation units on the multicasts: {sorted(send['units'])}")
    on_postgres = db.vendor == "postgresql"
    ok_count = p95 <= COUNT_P95_GOAL_MS
    ok_once = send["outcome"] == "sent" and send["once"] and send["wrong"] == 0
    ok_unit = send["units"] == {(send["unit"],)}
    say("")
    say(
        f"goal: 3-dimension count p95 ≤ {COUNT_P95_GOAL_MS:.0f} ms on PostgreSQL: "
        f"{common.verdict(ok_count and on_postgres)} ({p95:.1f} ms on {db.vendor})"
    )
    say(
        "goal: 100k targeted send with 3 versions effectively once (every follower exactly "
        f"one request, their version): {common.verdict(ok_once)} "
        f"(wrong version {send['wrong']})"
    )
    say(f"goal: every multicast carries the broadcast's unit: {common.verdict(ok_unit)}")
    say(f"RESULT: {common.verdict(ok_count and on_postgres and ok_once and ok_unit)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
