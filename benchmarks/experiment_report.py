"""How long an experiment report takes on large tables, against the bare SQL floor.

Fills a fresh database with one experiment's served lists (two arms and a holdout),
their impressions, clicks and purchases as feedback, and later purchase events, then
times :func:`recsdk.experiments.report.experiment_report` side by side with one
``GROUP BY`` that only counts the lists and feedback per arm (the least any report must
read). Prints Markdown.

    PYTHONPATH=. python benchmarks/experiment_report.py --exposures 100000 1000000
    PYTHONPATH=. python benchmarks/experiment_report.py \
        --postgres postgresql://127.0.0.1:5432/test --exposures 1000000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from recsdk.config import load_settings
from recsdk.experiments.assignment import assign_many
from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.report import experiment_report
from recsdk.storage import models
from recsdk.storage.store import Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 14
BATCH = 50_000


def settings_experiment() -> ExperimentSettings:
    table = {"placements": ["home"], "holdout": 0.1,
             "variants": {"control": {"share": 0.5}, "fresh": {"share": 0.5}}}
    return load_settings({"experiments": {"bench": table}}, environ={}).experiments[0]


def fill(store: Store, exposures: int, seed: int) -> dict[str, int]:
    """``exposures`` lists by ``exposures / 4`` users over 14 days; 60% seen, 8% (10% in
    fresh) clicked, 2% bought through the list; 1% of lists followed by a purchase event
    within two days."""
    rng = np.random.default_rng(seed)
    experiment = settings_experiment()
    users = max(exposures // 4, 1)
    user_ids = [f"u{i}" for i in range(users)]
    arm_of = {u: a for u, a in zip(user_ids, assign_many(experiment, user_ids, T0),
                                           strict=True)}
    counts = {"requests": 0, "feedback": 0, "events": 0}
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    ev = models.Event.__table__
    for start in range(0, exposures, BATCH):
        n = min(BATCH, exposures - start)
        who = rng.integers(0, users, n)
        at = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, DAYS * 86400, n))]
        requests, feedback, events = [], [], []
        for j in range(n):
            user = user_ids[who[j]]
            rid = f"r{start + j}"
            variant = arm_of[user]
            requests.append({"id": rid, "user_id": user, "session_id": f"s{who[j]}-{j % 3}",
                             "placement": "home", "variant": variant, "experiment": "bench",
                             "forced": False, "config_hash": "x", "plugins": ["popularity"],
                             "degraded": False, "latency_ms": float(rng.gamma(2, 2)),
                             "failures": 0, "created_at": at[j].replace(tzinfo=None)})
            base = {"request_id": rid, "user_id": user, "item_id": f"i{j % 500}",
                    "variant": variant, "timestamp": (at[j] + timedelta(minutes=1))
                    .replace(tzinfo=None)}
            u = rng.random(4)
            if u[0] < 0.6:
                feedback.append({**base, "type": "impression"})
            if u[1] < (0.10 if variant == "fresh" else 0.08):
                feedback.append({**base, "type": "click", "position": 0})
                if u[2] < 0.25:
                    feedback.append({**base, "type": "purchase", "value": 30.0})
            if u[3] < 0.01:
                events.append({"user_id": user, "session_id": None, "item_id": f"i{j % 700}",
                               "type": "purchase", "value": 25.0,
                               "timestamp": (at[j] + timedelta(hours=float(rng.uniform(1, 48))))
                               .replace(tzinfo=None)})
        with store.engine.begin() as conn:
            conn.execute(req.insert(), requests)
            if feedback:
                conn.execute(fb.insert(), feedback)
            if events:
                conn.execute(ev.insert(), events)
        counts["requests"] += len(requests)
        counts["feedback"] += len(feedback)
        counts["events"] += len(events)
    return counts


def bare(store: Store) -> float:
    """Seconds for the floor: lists and feedback counted per arm in SQL."""
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    start = time.perf_counter()
    with store.engine.connect() as conn:
        conn.execute(select(req.c.variant, func.count(), func.count(req.c.user_id.distinct()))
                     .where(req.c.experiment == "bench", req.c.forced.is_(False))
                     .group_by(req.c.variant)).all()
        conn.execute(select(req.c.variant, fb.c.type, func.count())
                     .join(req, req.c.id == fb.c.request_id)
                     .where(req.c.experiment == "bench", req.c.forced.is_(False))
                     .group_by(req.c.variant, fb.c.type)).all()
    return time.perf_counter() - start


@contextmanager
def database(postgres: str | None, tmp: str) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server, dropped after."""
    if postgres is None:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    import psycopg

    server = make_url(postgres)
    name = f"recsdk_bench_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(
                hide_password=False)
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exposures", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--postgres", default=None, metavar="SERVER_URL",
                        help="a PostgreSQL server (e.g. postgresql://127.0.0.1:5432/test): "
                             "a fresh database is created on it per size and dropped after; "
                             "default: a fresh SQLite file per size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| database | exposures | feedback rows | purchase events | report s | bare SQL s "
          "| ratio | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.exposures:
        with tempfile.TemporaryDirectory() as tmp, database(args.postgres, tmp) as url:
            store = Store(url)
            store.create_all()
            counts = fill(store, size, args.seed)
            if store.dialect == "postgresql":
                with store.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            floor = min(bare(store) for _ in range(3))
            now = T0 + timedelta(days=DAYS + 1)
            start = time.perf_counter()
            report = experiment_report(store, settings_experiment(), now=now)
            took = time.perf_counter() - start
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            assert sum(a.exposures for a in report.arms) == counts["requests"]
            print(f"| {store.dialect} | {counts['requests']:,} | {counts['feedback']:,} | "
                  f"{counts['events']:,} | {took:.2f} | {floor:.2f} | {took / floor:.1f}x | "
                  f"{rss:.0f} |", flush=True)
            store.engine.dispose()


if __name__ == "__main__":
    main()
