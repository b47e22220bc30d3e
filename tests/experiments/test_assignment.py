"""Assignment: deterministic across processes, uniform, sticky under ramp-up; holdout,
targeting, window, layers and the QA override."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from recsdk.config import load_settings
from recsdk.errors import ValidationFailed
from recsdk.experiments.assignment import (
    Assignment,
    Experiments,
    assign,
    assign_many,
    bucket,
    buckets,
    force,
    unit_of,
)
from recsdk.experiments.config import HOLDOUT, ExperimentSettings

NOW = datetime(2026, 12, 10, tzinfo=UTC)


def experiment(name: str = "x", shares: dict[str, float] | None = None,
               **extra: Any) -> ExperimentSettings:
    shares = shares or {"a": 0.5, "b": 0.5}
    table = {"placements": ["home"], "variants": {v: {"share": s} for v, s in shares.items()},
             **extra}
    return load_settings({"experiments": {name: table}}, environ={}).experiments[0]


def ids(n: int, prefix: str = "user:u") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_bucket_is_a_fixed_function_of_salt_and_unit() -> None:
    # pinned: a change of hash would silently reshuffle every running experiment
    assert bucket("x", "user:u1") == 0.19271315247385878
    assert bucket("salt", "session:s9") == 0.0899149301888239
    assert bucket("x", "user:u1") != bucket("y", "user:u1")
    b = buckets("x", ["user:u1", "user:u2"])
    assert b.tolist() == [bucket("x", "user:u1"), bucket("x", "user:u2")]
    assert ((b >= 0) & (b < 1)).all()


def test_same_assignment_in_another_process() -> None:
    e = experiment(shares={"a": 0.2, "b": 0.3, "c": 0.5}, holdout=0.1)
    units = ids(300)
    here = [assign(e, u, NOW) for u in units]
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from recsdk.config import load_settings\n"
        "from recsdk.experiments.assignment import assign\n"
        "e = load_settings({'experiments': {'x': {'placements': ['home'], 'holdout': 0.1, "
        "'variants': {'a': {'share': 0.2}, 'b': {'share': 0.3}, 'c': {'share': 0.5}}}}}, "
        "environ={}).experiments[0]\n"
        "now = datetime(2026, 12, 10, tzinfo=UTC)\n"
        "print(','.join(assign(e, f'user:u{i}', now).variant for i in range(300)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash() there
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=60)
    assert out.stdout.strip().split(",") == [a.variant for a in here]
    assert {a.variant for a in here} == {"a", "b", "c", HOLDOUT}


@pytest.mark.parametrize("shares", [{"a": 0.5, "b": 0.5}, {"a": 0.2, "b": 0.3, "c": 0.5}])
def test_sample_ratio_over_a_million_units(shares: dict[str, float]) -> None:
    e = experiment(shares=shares)
    got = assign_many(e, ids(1_000_000), NOW)
    names = list(shares)
    observed = np.array([(got == v).sum() for v in names])
    assert observed.sum() == 1_000_000
    expected = np.array([shares[v] for v in names]) * 1_000_000
    assert chisquare(observed, expected).pvalue > 0.001


def test_a_skewed_split_fails_the_check() -> None:
    """The sample-ratio check can fail: units of a 50/50 test counted as 20/30/50."""
    got = assign_many(experiment(shares={"a": 0.5, "b": 0.5}), ids(100_000), NOW)
    observed = np.array([(got == "a").sum(), (got == "b").sum()])
    assert chisquare(observed, [0.45 * 100_000, 0.55 * 100_000]).pvalue < 1e-6


def test_assign_many_agrees_with_assign() -> None:
    ramped = {"ramp": [{"at": NOW - timedelta(days=1), "shares": {"a": 0.1, "b": 0.3}}]}
    for e in (experiment(holdout=0.1, layer="L", layer_range=[0.2, 0.7], **ramped),
              experiment(shares={"a": 0.2, "b": 0.3, "c": 0.5})):
        units = ids(5000)
        scalar = [(a.variant if (a := assign(e, u, NOW)) else "") for u in units]
        assert assign_many(e, units, NOW).tolist() == scalar


def test_ramp_up_moves_no_unit_between_variants() -> None:
    day = timedelta(days=1)
    e = experiment(shares={"control": 0.5, "treatment": 0.5}, ramp=[
        {"at": NOW, "shares": {"control": 0.05, "treatment": 0.05}},
        {"at": NOW + day, "shares": {"control": 0.2, "treatment": 0.3}},
        {"at": NOW + 2 * day, "shares": {"control": 0.5, "treatment": 0.5}},
    ])
    units = ids(50_000)
    before = assign_many(e, units, NOW - day)
    assert (before == "").all()  # nobody before the first step
    previous = assign_many(e, units, NOW)
    seen = [previous]
    for t in (NOW + day, NOW + 2 * day, NOW + 10 * day):
        now = assign_many(e, units, t)
        assigned = previous != ""
        assert (now[assigned] == previous[assigned]).all()  # sticky
        seen.append(now)
        previous = now
    for got, (c, t) in zip(seen, [(0.05, 0.05), (0.2, 0.3), (0.5, 0.5), (0.5, 0.5)],
                           strict=True):
        assert (got == "control").mean() == pytest.approx(c, abs=0.01)
        assert (got == "treatment").mean() == pytest.approx(t, abs=0.01)


def test_holdout_share() -> None:
    e = experiment(holdout=0.1)
    got = assign_many(e, ids(100_000), NOW)
    assert (got == HOLDOUT).mean() == pytest.approx(0.1, abs=0.005)
    assert (got == "a").mean() == pytest.approx(0.45, abs=0.007)
    a = next(x for u in ids(100) if (x := assign(e, u, NOW)) and x.holdout)
    assert a == Assignment("x", HOLDOUT, holdout=True)


def test_targeting() -> None:
    new = experiment(targeting={"audience": "new"})
    returning = experiment(targeting={"audience": "returning"})
    assert assign(new, "user:u1", NOW, is_returning=False) is not None
    assert assign(new, "user:u1", NOW, is_returning=True) is None
    assert assign(returning, "user:u1", NOW, is_returning=True) is not None
    assert assign(returning, "user:u1", NOW, is_returning=False) is None
    assert assign(experiment(), "user:u1", NOW, is_returning=True) is not None


def test_start_and_stop() -> None:
    e = experiment(start=NOW.isoformat(), stop=(NOW + timedelta(days=7)).isoformat())
    assert assign(e, "user:u1", NOW - timedelta(seconds=1)) is None
    assert assign(e, "user:u1", NOW) is not None
    assert assign(e, "user:u1", NOW + timedelta(days=7)) is None
    naive = experiment(start="2026-12-10T00:00:00")  # no zone: UTC
    assert naive.start == NOW


def test_units() -> None:
    user, session = experiment(), experiment(unit="session")
    assert unit_of(user, "u1", "s1") == "user:u1"
    assert unit_of(user, None, "s1") == "session:s1"  # anonymous: the session
    assert unit_of(session, "u1", "s1") == "session:s1"
    assert unit_of(session, "u1", None) is None
    assert assign(user, None, NOW) is None


def two_in_a_layer() -> Experiments:
    table = {"placements": ["home"], "layer": "home",
             "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}}}
    settings = load_settings({"experiments": {
        "left": {**table, "layer_range": [0.0, 0.4]},
        "right": {**table, "layer_range": [0.4, 1.0],
                  "variants": {"a": {"share": 0.5}, "c": {"share": 0.5}}},
        "cart": {"placements": ["cart"], "variants": {"a": {"share": 0.5},
                                                      "b": {"share": 0.5}}},
    }}, environ={})
    return Experiments(settings.experiments)


def test_a_layer_splits_its_units_between_experiments() -> None:
    registry = two_in_a_layer()
    got = [registry.assign("home", user_id=f"u{i}", session_id=None, now=NOW)
           for i in range(20_000)]
    names = np.array([a.experiment if a else "" for a in got])
    assert (names == "").sum() == 0  # the slices cover the layer
    assert (names == "left").mean() == pytest.approx(0.4, abs=0.015)
    assert (names == "right").mean() == pytest.approx(0.6, abs=0.015)
    # each unit is in one experiment only, and its variants split it evenly
    left = [a.variant for a in got if a and a.experiment == "left"]
    assert left.count("a") / len(left) == pytest.approx(0.5, abs=0.03)
    assert registry.assign("default", user_id="u1", session_id=None, now=NOW) is None
    assert registry.assign("cart", user_id="u1", session_id=None, now=NOW).experiment == "cart"


def test_forced_variant() -> None:
    registry = two_in_a_layer()
    got = registry.assign("home", user_id="u1", session_id=None, now=NOW,
                          force_variant="right:c")
    assert got == Assignment("right", "c", forced=True)
    assert registry.assign("home", user_id=None, session_id=None, now=NOW,
                           force_variant="c") == Assignment("right", "c", forced=True)
    e = experiment(holdout=0.1, stop=(NOW - timedelta(days=1)).isoformat())
    assert force(e, HOLDOUT) == Assignment("x", HOLDOUT, holdout=True, forced=True)
    assert assign(e, "user:u1", NOW) is None  # stopped, but QA may still force


@pytest.mark.parametrize(("placement", "spec", "message"), [
    ("home", "right:z", "experiment 'right' has no variant 'z'; its variants: a, c"),
    ("home", "a", "forced variant 'a' is ambiguous (say EXPERIMENT:VARIANT) on placement "
                  "'home'; variants here: left:a, left:b, right:a, right:c"),
    ("home", "z", "forced variant 'z' does not exist on placement 'home'"),
    ("home", "nope:a", "no experiment 'nope' on placement 'home'"),
    ("default", "a", "no experiment runs on placement 'default'"),
])
def test_unknown_forced_variant_is_a_bad_request(placement: str, spec: str,
                                                 message: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        two_in_a_layer().assign(placement, user_id="u1", session_id=None, now=NOW,
                                force_variant=spec)
    assert message in err.value.messages["variant"][0]
    assert err.value.what == "request"
