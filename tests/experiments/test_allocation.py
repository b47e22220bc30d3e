"""Thompson-sampling allocation: epochs computed once and shared by every process, units
sticky across epochs, warm-up on the declared shares, the better arm gaining traffic,
the holdout outside the bandit, the report's expected shares from the stored epochs,
and each bad input named."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, text

from recsdk import RecSDK
from recsdk.config import load_settings
from recsdk.errors import ConfigurationError
from recsdk.experiments import allocation, sticky
from recsdk.experiments.allocation import (
    EpochAllocator,
    EpochShares,
    allocation_history,
    compute_epoch,
    epoch_of,
    epoch_seed,
    place,
    shares_from_counts,
)
from recsdk.experiments.assignment import Experiments, assign, assign_many, bucket
from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.experiments.report import BANDIT_NOTE, _expected_shares, experiment_report
from recsdk.experiments.stats import sample_ratio_mismatch
from recsdk.experiments.sticky import ThompsonAssigner
from recsdk.storage import models
from recsdk.storage.store import Store
from recsdk.types import new_request_id
from tests.postgres import fresh_postgres_database

T0 = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def thompson(name: str = "bandit", shares: Mapping[str, float] | None = None,
             start: datetime | None = T0, holdout: float = 0.0,
             **allocation_keys: Any) -> ExperimentSettings:
    shares = shares or {"a": 0.5, "b": 0.5}
    table: dict[str, Any] = {
        "placements": ["home"], "variants": {v: {"share": s} for v, s in shares.items()},
        "holdout": holdout,
        "allocation": {"method": "thompson", "every_hours": 24, "warmup_units": 50,
                       "min_share": 0.05, **allocation_keys}}
    if start is not None:
        table["start"] = start
    return load_settings({"experiments": {name: table}}, environ={}).experiments[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'shop.db'}")
    store.create_all()
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store with the schema on each backend (their conflict handling differs)."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'any.db'}")
        store.create_all()
        yield store
        store.close()
        return
    with fresh_postgres_database() as url:
        store = Store(url)
        store.create_all()
        yield store
        store.close()


def serve(store: Store, assigner: ThompsonAssigner, experiment: ExperimentSettings,
          start: datetime, units: list[str], rates: Mapping[str, float],
          rng: np.random.Generator, hours: float = 23.0) -> dict[str, str]:
    """Each unit asks once, spread over ``hours`` from ``start``; the list is logged as
    served and a purchase is posted with the arm's probability. Returns unit -> arm."""
    requests, feedback, arms = [], [], {}
    for i, unit in enumerate(units):
        at = start + timedelta(hours=hours * i / max(len(units), 1))
        got = assigner.assign(experiment, unit, at)
        assert got is not None and got.experiment == experiment.name
        arms[unit] = got.variant
        rid = new_request_id()
        user = unit.removeprefix("user:")
        requests.append({"request_id": rid, "user_id": user, "session_id": None,
                         "placement": "home", "variant": got.variant,
                         "experiment": experiment.name, "forced": False,
                         "config_hash": "test", "plugins": ["popularity"], "degraded": False,
                         "created_at": at, "items": [("i0", 0, 1.0)]})
        if rng.random() < rates.get(got.variant, 0.0):
            feedback.append({"request_id": rid, "user_id": user, "item_id": "i0",
                             "type": "purchase", "position": 0, "value": 10.0,
                             "variant": got.variant, "timestamp": at + timedelta(minutes=5)})
    store.record_requests(requests)
    store.add_feedback(feedback)
    return arms


def users(day: int, n: int) -> list[str]:
    return [f"user:d{day}u{i}" for i in range(n)]


def rows(store: Store, model: type[models.Base]) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


# --------------------------------------------------------------------------- epochs


def test_epochs_are_fixed_slices_from_the_origin() -> None:
    assert epoch_of(T0, 24, T0) == (0, T0)
    assert epoch_of(T0, 24, T0 + DAY - timedelta(microseconds=1)) == (0, T0)
    assert epoch_of(T0, 24, T0 + 3 * DAY + timedelta(hours=5)) == (3, T0 + 3 * DAY)
    assert epoch_of(T0, 0.5, T0 + timedelta(minutes=95)) == (3, T0 + timedelta(minutes=90))
    assert epoch_seed(0, 1) == epoch_seed(0, 1)
    assert len({epoch_seed(0, 1), epoch_seed(0, 2), epoch_seed(1, 1)}) == 3


def test_warmup_places_by_the_declared_shares_and_stores_them(store: Store) -> None:
    experiment = thompson(shares={"a": 0.7, "b": 0.3}, warmup_units=200)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(1)
    arms = serve(store, assigner, experiment, T0, users(0, 400), {"a": 0.0, "b": 0.9}, rng)
    day1 = serve(store, assigner, experiment, T0 + DAY, users(1, 400), {"a": 0.0, "b": 0.9},
                 rng)
    history = allocation_history(store, experiment)
    assert [e.start for e in history.epochs] == [T0, T0 + DAY]
    first, second = history.epochs
    assert first.warmup and first.shares == {"a": 0.7, "b": 0.3}
    assert first.counts == {"a": (0, 0), "b": (0, 0)}  # nothing served before epoch 0
    # b has fewer than 200 units at the start of day 1 (about 120): still warm-up, although
    # b converts 90 % and a never does
    assert second.warmup and second.shares == {"a": 0.7, "b": 0.3}
    assert second.counts["b"][1] < 200 <= second.counts["a"][1]
    placed = Counter(arms.values()) + Counter(day1.values())
    assert sample_ratio_mismatch([placed["a"], placed["b"]], [0.7, 0.3]).p_value > 0.001
    third = assigner.epochs.shares(experiment, T0 + 2 * DAY + timedelta(hours=1))
    assert not third.warmup  # b passed 200 units during day 1
    assert third.shares["b"] > 0.9 and third.prob_best is not None


def test_thompson_epoch_is_thompson_shares_of_the_counts_at_its_start(store: Store) -> None:
    from recsdk.experiments.sequential import thompson_shares

    experiment = thompson(shares={"a": 0.5, "b": 0.3, "c": 0.2}, warmup_units=10, seed=7)
    assigner = ThompsonAssigner(store)
    serve(store, assigner, experiment, T0, users(0, 300), {"a": 0.1, "b": 0.15, "c": 0.2},
          np.random.default_rng(2))
    epoch = compute_epoch(store, experiment, 1, T0 + DAY)
    report = experiment_report(store, experiment, now=T0 + DAY)
    names = ("a", "b", "c")
    expected = thompson_shares([report.arm(v).units_converted for v in names],
                               [report.arm(v).units for v in names], variants=names,
                               min_share=0.05, seed=epoch_seed(7, 1))
    assert dict(epoch.shares) == expected.as_mapping()
    assert dict(epoch.prob_best or {}) == dict(zip(names, expected.prob_best, strict=True))
    assert min(epoch.shares.values()) >= 0.05 - 1e-12
    assert sum(epoch.shares.values()) == pytest.approx(1.0)
    clicks = thompson(shares={"a": 0.5, "b": 0.3, "c": 0.2}, warmup_units=10, seed=7,
                      metric="click_rate")
    assert compute_epoch(store, clicks, 1, T0 + DAY).counts["a"][0] == 0  # nobody clicked


def test_an_epoch_is_computed_once_and_late_data_does_not_change_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[datetime] = []
    real_compute = allocation.compute_epoch

    def counting(store: Store, experiment: ExperimentSettings, epoch: int, start: datetime
                 ) -> EpochShares:
        computed.append(start)
        return real_compute(store, experiment, epoch, start)

    monkeypatch.setattr(allocation, "compute_epoch", counting)
    experiment = thompson(warmup_units=10)
    first = ThompsonAssigner(store)
    rng = np.random.default_rng(3)
    serve(store, first, experiment, T0, users(0, 200), {"a": 0.1, "b": 0.1}, rng)
    mine = first.epochs.shares(experiment, T0 + DAY + timedelta(minutes=1))
    # lists and purchases logged late, stamped before the epoch's data cut (23:00): a
    # recomputation would favour a; the stored epoch stands
    late = serve(store, first, experiment, T0 + timedelta(hours=20), users(9, 50),
                 {"a": 1.0, "b": 0.0}, rng, hours=0.4)
    assert Counter(late.values())["a"] > 10
    assert compute_epoch(store, experiment, 1, T0 + DAY).shares != mine.shares
    other = ThompsonAssigner(store)  # another process
    theirs = other.epochs.shares(experiment, T0 + DAY + timedelta(hours=20))
    assert theirs == mine
    assert rows(store, models.ExperimentAllocation) == 2
    assert computed == [T0, T0 + DAY]  # each epoch once, by the first process to need it


def test_the_next_epoch_is_computed_ahead_from_data_cut_before_it_starts(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = thompson(warmup_units=10)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(9)
    serve(store, assigner, experiment, T0, users(0, 200), {"a": 0.1, "b": 0.1}, rng)
    assert allocation.data_cut(T0 + DAY, 24) == T0 + timedelta(hours=23)
    # in the last hour: these units' purchases are after the cut, so they do not count
    serve(store, assigner, experiment, T0 + timedelta(hours=23, minutes=1), users(1, 40),
          {"a": 1.0, "b": 1.0}, rng, hours=0.5)
    assigner.epochs.wait(timeout_s=30)
    ahead = assigner.epochs.stored(experiment.name, T0 + DAY)
    assert ahead is not None  # stored before the epoch started
    report = experiment_report(store, experiment, now=T0 + timedelta(hours=23))
    assert ahead.counts == {v: (report.arm(v).units_converted, report.arm(v).units)
                            for v in ("a", "b")}
    assert sum(n for _, n in ahead.counts.values()) == 200

    def no_computing(*args: Any) -> EpochShares:
        raise AssertionError("a request computed an epoch that was computed ahead")

    monkeypatch.setattr(allocation, "compute_epoch", no_computing)
    got = assigner.assign(experiment, "user:new", T0 + DAY + timedelta(seconds=1))
    assert got is not None
    assert assigner.epochs.shares(experiment, T0 + DAY + timedelta(seconds=2)) == ahead
    assigner.close()


def test_a_failed_computation_ahead_is_left_to_the_request_path(
        store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    experiment = thompson(warmup_units=10)
    assigner = ThompsonAssigner(store)
    assigner.epochs.shares(experiment, T0)
    real_compute = allocation.compute_epoch

    def failing(*args: Any) -> EpochShares:
        raise RuntimeError("report failed")

    monkeypatch.setattr(allocation, "compute_epoch", failing)
    with caplog.at_level(logging.WARNING, logger=allocation.__name__):
        assigner.epochs.shares(experiment, T0 + timedelta(hours=23, minutes=30))
        assigner.epochs.wait(timeout_s=30)
    assert "computing the next epoch's shares in the background failed" in caplog.text
    assert assigner.epochs.stored(experiment.name, T0 + DAY) is None
    monkeypatch.setattr(allocation, "compute_epoch", real_compute)
    assert assigner.epochs.shares(experiment, T0 + DAY).start == T0 + DAY
    assert assigner.epochs.stored(experiment.name, T0 + DAY) is not None
    assigner.close()


def test_a_race_for_an_epoch_is_settled_by_the_key(any_store: Store) -> None:
    store = any_store
    experiment = thompson()
    winner = EpochShares(experiment.name, T0, {"a": 0.9, "b": 0.1}, {"a": 1.0, "b": 0.0},
                         {"a": (9, 10), "b": (0, 10)})
    loser = EpochShares(experiment.name, T0, {"a": 0.2, "b": 0.8}, None,
                        {"a": (0, 0), "b": (0, 0)})
    allocator = EpochAllocator(store)
    assert allocator._store(winner, T0) == winner
    assert allocator._store(loser, T0) == winner  # the row already stored is read back
    assert allocator.shares(experiment, T0 + timedelta(hours=3)) == winner
    assert rows(store, models.ExperimentAllocation) == 1


# --------------------------------------------------------------------------- stickiness


def test_units_keep_their_first_arm_when_the_shares_change(store: Store) -> None:
    experiment = thompson(warmup_units=20)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(4)
    rates = {"a": 0.02, "b": 0.4}
    day0 = serve(store, assigner, experiment, T0, users(0, 300), rates, rng)
    for day in range(1, 4):
        serve(store, assigner, experiment, T0 + day * DAY, users(day, 300), rates, rng)
    later = T0 + 4 * DAY + timedelta(hours=2)
    now_shares = assigner.epochs.shares(experiment, later).shares
    assert now_shares["b"] > 0.9
    # units whose hash would put them elsewhere under today's shares: they must stay
    moved = [u for u, arm in day0.items()
             if place(experiment, bucket(experiment.salt, u), now_shares) != arm]
    assert len(moved) > 50
    for fresh in (assigner, ThompsonAssigner(store)):  # this process, and another one
        again = {u: fresh.assign(experiment, u, later).variant for u in day0}
        assert again == day0
    assigner.forget()  # the cache emptied: read back from the table
    assert {u: assigner.assign(experiment, u, later).variant for u in moved} == {
        u: day0[u] for u in moved}


def test_a_returning_unit_costs_no_query(store: Store) -> None:
    experiment = thompson()
    assigner = ThompsonAssigner(store)
    first = assigner.assign(experiment, "user:x", T0 + timedelta(hours=1))
    spent = assigner.queries
    assert spent == 2  # not stored yet: one read, one insert
    for hour in range(2, 50):
        assert assigner.assign(experiment, "user:x", T0 + timedelta(hours=hour)) == first
    assert assigner.queries == spent
    small = ThompsonAssigner(store, cache_units=1)  # bounded: the oldest unit is dropped
    small.assign(experiment, "user:x", T0 + timedelta(hours=1))
    small.assign(experiment, "user:y", T0 + timedelta(hours=1))
    before = small.queries
    assert small.assign(experiment, "user:x", T0 + timedelta(hours=1)) == first
    assert small.queries == before + 1  # read back from the table


def test_two_processes_agree_on_a_unit_placed_at_once(any_store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = any_store
    experiment = thompson()
    at = T0 + timedelta(hours=1)
    ours = ThompsonAssigner(store).assign(experiment, "user:r", at)
    assert ours is not None
    other = "b" if ours.variant == "a" else "a"
    with store.engine.begin() as conn:  # as if another process had placed it elsewhere
        conn.execute(models.ExperimentAssignment.__table__.update().values(variant=other))
    racer = ThompsonAssigner(store)
    reads = iter([None])  # it read before the other process inserted, then inserts
    real = racer.stored
    monkeypatch.setattr(racer, "stored", lambda e, u: next(reads, None) or real(e, u))
    assert racer.assign(experiment, "user:r", at).variant == other
    assert rows(store, models.ExperimentAssignment) == 1


# --------------------------------------------------------------------------- allocation


def test_a_clearly_better_arm_gets_most_of_the_traffic(store: Store) -> None:
    experiment = thompson(shares={"a": 0.34, "b": 0.33, "c": 0.33}, warmup_units=50,
                          min_share=0.05, seed=3)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(5)
    rates = {"a": 0.05, "b": 0.08, "c": 0.2}
    placed = [serve(store, assigner, experiment, T0 + d * DAY, users(d, 300), rates, rng)
              for d in range(6)]
    best = [Counter(day.values())["c"] / len(day) for day in placed]
    assert best[0] == pytest.approx(1 / 3, abs=0.08)  # warm-up: declared shares
    assert best[-1] > 0.7
    last = allocation_history(store, experiment).epochs[-1]
    assert last.shares["c"] > 0.75 and last.prob_best["c"] > 0.95
    assert min(last.shares.values()) >= 0.05 - 1e-12  # losers keep exploring


def test_the_holdout_stays_outside_the_bandit(store: Store) -> None:
    experiment = thompson(warmup_units=20, holdout=0.2)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(6)
    arms: dict[str, str] = {}
    for day in range(4):
        arms |= serve(store, assigner, experiment, T0 + day * DAY, users(day, 400),
                      {"a": 0.02, "b": 0.4, HOLDOUT: 0.9}, rng)
    held = [u for u, arm in arms.items() if arm == HOLDOUT]
    assert len(held) / len(arms) == pytest.approx(0.2, abs=0.03)
    assert all(bucket(f"{experiment.salt}:holdout", u) < 0.2 for u in held)
    assert rows(store, models.ExperimentAssignment) == len(arms) - len(held)
    for epoch in allocation_history(store, experiment).epochs:
        assert set(epoch.shares) == {"a", "b"} and set(epoch.counts) == {"a", "b"}


# --------------------------------------------------------------------------- report


def test_the_report_expects_the_stored_epochs_shares(store: Store) -> None:
    experiment = thompson(warmup_units=30, holdout=0.1)
    assigner = ThompsonAssigner(store)
    rng = np.random.default_rng(7)
    for day in range(5):
        serve(store, assigner, experiment, T0 + day * DAY, users(day, 300),
              {"a": 0.03, "b": 0.3}, rng)
    report = experiment_report(store, experiment, now=T0 + 6 * DAY)
    history = allocation_history(store, experiment)
    first_seen = [T0 + d * DAY + timedelta(hours=23 * i / 300) for d in range(5)
                  for i in range(300)]
    assert report.expected_shares == pytest.approx(
        _expected_shares(experiment, first_seen, history.shares_at))
    assert report.expected_shares["b"] > 0.6  # not the declared 0.45
    assert report.expected_shares[HOLDOUT] == pytest.approx(0.1)
    assert report.srm_mismatch is False
    units = [report.arm(v).units for v in ("a", "b", HOLDOUT)]
    assert sample_ratio_mismatch(units, [0.45, 0.45, 0.1]).mismatch  # declared: wrong
    assert BANDIT_NOTE in report.skipped
    fixed = load_settings({"experiments": {"bandit": {
        "placements": ["home"], "holdout": 0.1,
        "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}}}}}, environ={}).experiments[0]
    assert BANDIT_NOTE not in experiment_report(store, fixed, now=T0 + 6 * DAY).skipped


def test_history_before_the_first_epoch_is_the_declared_split(store: Store) -> None:
    experiment = thompson(shares={"a": 0.6, "b": 0.4})
    history = allocation_history(store, experiment)
    assert history.epochs == ()
    assert history.shares_at(T0) == {"a": 0.6, "b": 0.4}


# --------------------------------------------------------------------------- serving


def sdk_config(url: str, **allocation_keys: Any) -> dict[str, Any]:
    return {
        "database_url": url, "pipeline": {"timeout_ms": 10_000},
        "plugins": {"popularity": {}}, "placements": {"cart": {}},
        "experiments": {
            "bandit": {"placements": ["home"], "start": T0,
                       "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}},
                       "allocation": {"method": "thompson", "warmup_units": 20,
                                      **allocation_keys}},
            "plain": {"placements": ["cart"],
                      "variants": {"x": {"share": 0.5}, "y": {"share": 0.5}}}},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def test_two_sdks_on_one_database_share_epochs_and_arms(database_url: str) -> None:
    with RecSDK(sdk_config(database_url), environ={}, serve_models=False) as one, \
            RecSDK(sdk_config(database_url), environ={}, serve_models=False) as two:
        experiment = one.experiments.get("bandit")
        assert one.thompson is not None and two.thompson is not None
        rng = np.random.default_rng(8)
        day0 = serve(one.store, one.thompson, experiment, T0, users(0, 100),
                     {"a": 0.05, "b": 0.5}, rng)
        at = T0 + DAY + timedelta(hours=3)
        theirs = {u: two.thompson.assign(experiment, u, at).variant for u in day0}
        assert theirs == day0
        new = users(1, 60)
        by_two = {u: two.thompson.assign(experiment, u, at).variant for u in new}
        by_one = {u: one.thompson.assign(experiment, u, at + timedelta(hours=1)).variant
                  for u in new}
        assert by_one == by_two
        assert one.thompson.epochs.shares(experiment, at) == two.thompson.epochs.shares(
            experiment, at)
        assert not two.thompson.epochs.shares(experiment, at).warmup
        assert rows(one.store, models.ExperimentAllocation) == 2
        assert rows(one.store, models.ExperimentAssignment) == 160


def test_recommend_serves_thompson_arms_sticky_and_fixed_ones_without_storage(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with RecSDK(sdk_config(url), environ={}) as sdk:
        sdk.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(5)])
        sdk.track_many([{"user_id": "old", "item_id": "i0", "type": "purchase"}])
        sdk.fit()
        assert sdk.thompson is not None
        first = {f"v{n}": sdk.recommend(f"v{n}", placement="home", k=1) for n in range(30)}
        assert {r.experiment for r in first.values()} == {"bandit"}
        assert {r.variant for r in first.values()} == {"a", "b"}
        spent = sdk.thompson.queries
        again = {u: sdk.recommend(u, placement="home", k=1).variant for u in first}
        assert again == {u: r.variant for u, r in first.items()}
        assert sdk.thompson.queries == spent  # returning units: cache hits
        plain = [sdk.recommend(f"v{n}", placement="cart", k=1) for n in range(30)]
        assert {r.experiment for r in plain} == {"plain"}
        assert sdk.thompson.queries == spent  # the fixed experiment: hashes only
        assert rows(sdk.store, models.ExperimentAssignment) == 30
        forced = sdk.recommend("qa", placement="home", k=1, force_variant="bandit:b")
        assert forced.variant == "b" and rows(sdk.store, models.ExperimentAssignment) == 30
    fixed_only = sdk_config(f"sqlite:///{tmp_path / 'plain.db'}")
    del fixed_only["experiments"]["bandit"]
    with RecSDK(fixed_only, environ={}, serve_models=False) as sdk:
        assert sdk.thompson is None


def test_without_a_start_epochs_count_from_the_first_record(tmp_path: Path) -> None:
    config = sdk_config(f"sqlite:///{tmp_path / 'shop.db'}")
    del config["experiments"]["bandit"]["start"]
    with RecSDK(config, environ={}, serve_models=False) as sdk:
        table = models.ExperimentRecord.__table__
        with sdk.store.engine.connect() as conn:
            recorded = conn.execute(select(table.c.first_seen_at)
                                    .where(table.c.name == "bandit")).scalar_one()
        experiment = sdk.experiments.get("bandit")
        assert sdk.thompson.epochs.origin(experiment) == recorded
        shares = sdk.thompson.epochs.shares(experiment, recorded + timedelta(hours=30))
        assert shares.start == recorded + DAY
        # a process whose clock is behind the one that recorded it: not started yet
        early = recorded - timedelta(seconds=2)
        assert sdk.thompson.assign(experiment, "user:early", early) is None
        assert sdk.thompson.assign(experiment, "user:early", recorded) is not None


def test_the_documented_allocation_table_loads() -> None:
    import re
    import tomllib

    text = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    part = text[text.index("## Thompson-sampling allocation"):]
    block = re.search(r"```toml\n(.*?)```", part, re.S)
    assert block is not None
    table = tomllib.loads(block.group(1))["experiments"]["home_blend"]["allocation"]
    (e,) = load_settings({"experiments": {"home_blend": {
        "placements": ["home"], "allocation": table,
        "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}}}}}, environ={}).experiments
    assert e.allocation.method == "thompson" and e.allocation.every_hours == 24
    assert (e.allocation.warmup_units, e.allocation.min_share) == (100, 0.05)


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_are_named(store: Store) -> None:
    bandit = thompson()
    fixed = load_settings({"experiments": {"f": {
        "placements": ["home"], "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}}}}},
        environ={}).experiments[0]
    with pytest.raises(ValueError, match="before the first epoch"):
        epoch_of(T0, 24, T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="every_hours must be > 0"):
        epoch_of(T0, 0, T0)
    with pytest.raises(ValueError, match=r"bucket must be in \[0, 1\)"):
        place(bandit, 1.0, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match=r"miss \['b'\]"):
        place(bandit, 0.5, {"a": 1.0})
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="cache_units must be a positive integer"):
            ThompsonAssigner(store, cache_units=bad)
    with pytest.raises(ValueError, match="ThompsonAssigner assigns 'thompson'"):
        ThompsonAssigner(store).assign(fixed, "user:u", T0)
    with pytest.raises(ValueError, match=r"counts of experiment 'bandit' miss \['b'\]"):
        shares_from_counts(bandit, {"a": (1, 10)}, 0, T0)
    with pytest.raises(ValueError, match="epochs are for 'thompson'"):
        compute_epoch(store, fixed, 0, T0)
    with pytest.raises(ValueError, match=r"allocates by .thompson.*ThompsonAssigner"):
        assign(bandit, "user:u", T0)
    with pytest.raises(ValueError, match="allocates by 'thompson'"):
        assign_many(bandit, ["user:u"], T0)
    with pytest.raises(ConfigurationError, match=r"experiments\.bandit: allocation .thompson. "
                                                 "needs the database"):
        Experiments([bandit]).assign("home", user_id="u", session_id=None, now=T0)
    with pytest.raises(ConfigurationError, match="no record yet"):
        ThompsonAssigner(store).assign(thompson(start=None), "user:u", T0)


def test_units_outside_the_bandit_need_no_database(store: Store) -> None:
    bandit = thompson(holdout=0.3)
    assigner = ThompsonAssigner(store)
    assert assigner.assign(bandit, None, T0) is None  # no unit
    assert assigner.assign(bandit, "user:u", T0 - DAY) is None  # before the start
    held = next(f"user:h{n}" for n in range(100)
                if bucket(f"{bandit.salt}:holdout", f"user:h{n}") < 0.3)
    assert assigner.assign(bandit, held, T0).holdout
    assert assigner.queries == 0 and rows(store, models.ExperimentAllocation) == 0


def test_a_database_failure_serves_outside_the_experiment(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    assigner = ThompsonAssigner(store)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE experiment_assignments"))
    with caplog.at_level(logging.WARNING, logger=sticky.__name__):
        assert assigner.assign(thompson(), "user:u", T0) is None
    assert "could not read or store a unit's arm" in caplog.text
