"""``recsdk evaluate-policy`` on recsdk's own tables, SQLite and PostgreSQL: impressions with
propensities, feedback credited to them, the filters, and lists without propensities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import ClassVar

import numpy as np
import pytest

from recsdk import Plugin, RecSDK, hookimpl
from recsdk.types import Ranking
from tests.cli.conftest import Invoke, assert_user_error, generate_shop

JANUARY = datetime(2026, 1, 10, tzinfo=UTC)
MARCH = datetime(2026, 3, 10, tzinfo=UTC)


def served(request_id: str, user: str, items: list[tuple[str, float | None]], *,
           placement: str = "home", created_at: datetime = MARCH) -> dict:
    return {"request_id": request_id, "user_id": user, "placement": placement,
            "variant": "default", "config_hash": "c", "plugins": ["bandit"],
            "degraded": False, "created_at": created_at,
            "items": [(item, p, 1.0 / p, q) for p, (item, q) in enumerate(items, start=1)]}


@pytest.fixture
def logged(empty_database_url: str) -> str:
    """Three lists at 'home' in March (propensities 0.5 and 0.25), one in January, one at
    'cart'; clicks and a purchase of 30 credited to them."""
    with RecSDK({"database_url": empty_database_url}, environ={}) as sdk:
        sdk.store.record_requests([
            served("r1", "u1", [("a", 0.5), ("b", 0.25)]),
            served("r2", "u2", [("b", 0.5), ("a", 0.25)]),
            served("r3", "u1", [("c", 0.5), ("a", 0.5)]),
            served("old", "u3", [("a", 1.0), ("b", 1.0)], created_at=JANUARY),
            served("cart", "u3", [("a", 1.0)], placement="cart"),
        ])
        sdk.log_feedback([
            {"request_id": "r1", "item_id": "a", "type": "click"},
            {"request_id": "r1", "item_id": "a", "type": "purchase", "value": 30.0},
            {"request_id": "r2", "item_id": "a", "type": "click"},
            {"request_id": "old", "item_id": "b", "type": "click"},
            {"request_id": "cart", "item_id": "a", "type": "click"},
        ])
    return empty_database_url


def run_json(invoke: Invoke, url: str, *args: str) -> dict:
    result = invoke("evaluate-policy", *args, "--json", database_url=url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


REWARDS = ("--reward", "click=1", "--reward", "purchase=value")


def test_logging_policy_reads_the_tables(invoke: Invoke, logged: str) -> None:
    out = run_json(invoke, logged, "--target-logging", *REWARDS)
    per_list = [31.0, 1.0, 0.0, 1.0, 1.0]  # r1, r2, r3, old, cart
    assert out["requests"] == 5 and out["impressions"] == 9
    assert out["logged_value"]["value"] == pytest.approx(np.mean(per_list))
    assert out["estimates"]["ips"]["value"] == pytest.approx(np.mean(per_list))
    assert out["reward"] == {"click": 1.0, "purchase": "value"}
    assert out["source"] == f"database {logged}"


def test_filters_and_a_target_file(invoke: Invoke, logged: str, tmp_path) -> None:
    target = tmp_path / "target.csv"
    target.write_text("request_id,position,item_id,probability\n"
                      "r1,1,a,1\nr1,2,b,1\nr2,1,a,1\nr2,2,b,1\nr3,1,a,1\nr3,2,c,1\n")
    out = run_json(invoke, logged, "--target-file", str(target), "--placement", "home",
                   "--since", "2026-02-01", *REWARDS)
    assert (out["requests"], out["impressions"]) == (3, 6)
    # only r1's two impressions match: (31 * 1/0.5 + 0 * 1/0.25) / 3 lists
    assert out["estimates"]["ips"]["value"] == pytest.approx(62 / 3)
    assert out["matched_share"] == pytest.approx(2 / 6)


def test_until_keeps_earlier_lists(invoke: Invoke, logged: str) -> None:
    out = run_json(invoke, logged, "--target-logging", "--until", "2026-02-01T00:00:00",
                   *REWARDS)
    assert (out["requests"], out["logged_value"]["value"]) == (1, 1.0)


def test_unknown_feedback_type(invoke: Invoke, logged: str) -> None:
    result = invoke("evaluate-policy", "--target-logging", database_url=logged)
    assert_user_error(result, "feedback type(s) ['purchase'] have no reward")


def test_lists_without_propensities(invoke: Invoke, logged: str) -> None:
    with RecSDK({"database_url": logged}, environ={}) as sdk:
        sdk.store.record_requests([served("plain", "u4", [("a", None), ("b", None)]),
                                   served("half", "u4", [("a", 0.5), ("b", None)])])
    result = invoke("evaluate-policy", "--target-logging", *REWARDS, database_url=logged)
    assert_user_error(result, "propensity", "3 impression(s) of 2 request(s) have no "
                      "propensity (impressions.propensity is NULL)", "--drop-incomplete")
    out = run_json(invoke, logged, "--target-logging", "--drop-incomplete", *REWARDS)
    assert out["requests"] == 5
    assert "2 list(s) left out" in out["notes"][0]
    result = invoke("evaluate-policy", "--target-logging", "--drop-incomplete",
                    "--placement", "home", "--since", "2026-03-01", "--until", "2026-03-02",
                    *REWARDS, database_url=logged)
    assert_user_error(result, "no served lists with impressions at placement 'home' in the "
                      "given time range")


def test_only_lists_without_propensities(invoke: Invoke, empty_database_url: str) -> None:
    with RecSDK({"database_url": empty_database_url}, environ={}) as sdk:
        sdk.store.record_requests([served("plain", "u4", [("a", None)])])
    result = invoke("evaluate-policy", "--target-logging", "--drop-incomplete",
                    database_url=empty_database_url)
    assert_user_error(result, "every one of the 1 selected list(s) has an impression "
                      "without propensity")


def test_an_empty_database(invoke: Invoke, empty_database_url: str) -> None:
    RecSDK({"database_url": empty_database_url}, environ={}).close()
    result = invoke("evaluate-policy", "--target-logging", database_url=empty_database_url)
    assert_user_error(result, "no served lists with impressions: there is nothing to evaluate")


def test_a_database_without_the_schema(invoke: Invoke, tmp_path) -> None:
    result = invoke("evaluate-policy", "--target-logging",
                    database_url=f"sqlite:///{tmp_path / 'none.db'}")
    assert_user_error(result, "recsdk db upgrade")


def test_bad_time(invoke: Invoke, tmp_path) -> None:
    result = invoke("evaluate-policy", "--target-logging", "--since", "last week",
                    database_url=f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2 and "expected an ISO 8601 date" in result.stderr


class Coin(Plugin):
    """A stochastic reranker: swaps the first two items with probability 1/2 and logs the
    item-position propensities of that draw (1/2 each for the first two, 1 for the rest)."""

    rng: ClassVar[np.random.Generator] = np.random.default_rng(0)

    @hookimpl(trylast=True)
    def recsdk_rerank(self, ranking: Ranking) -> Ranking:
        ids, scores = list(ranking.item_ids[:3]), list(ranking.scores[:3])
        if type(self).rng.random() < 0.5:
            ids[0], ids[1] = ids[1], ids[0]
        return Ranking(ids, scores, [0.5, 0.5] + [1.0] * (len(ids) - 2))


def test_served_lists_end_to_end(invoke: Invoke, empty_database_url: str, tmp_path) -> None:
    """Lists served by recommend() with a stochastic reranker, clicks through
    log_feedback(). Two deterministic targets put each list's first two items in id order
    and in reverse id order: in every list exactly one of them agrees with the coin at
    positions 1 and 2 (weight 1 / 0.5 = 2), and both agree at position 3 (weight 1), so
    their IPS estimates add up to twice the logged mean, exactly."""
    generate_shop(empty_database_url)
    config = {"database_url": empty_database_url, "plugins": {"popularity": {}, "coin": {}}}
    rng = np.random.default_rng(1)
    with RecSDK(config, environ={}, plugins={"coin": Coin}) as sdk:
        sdk.fit()
        results = [sdk.recommend(f"u{u % 25:02d}", k=3) for u in range(60)]
        clicks = [{"request_id": r.request_id, "item_id": i.item_id, "type": "click"}
                  for r in results for i in r.items if rng.random() < 0.3]
        sdk.log_feedback(clicks)
    assert all([i.propensity for i in r.items] == [0.5, 0.5, 1.0] for r in results)
    in_order = [r.items[0].item_id < r.items[1].item_id for r in results]
    assert 0 < sum(in_order) < 60  # the coin fell both ways

    def target(path, reverse: bool) -> str:
        lines = ["request_id,position,item_id,probability"]
        for r in results:
            first = sorted(r.item_ids[:2], reverse=reverse)
            lines += [f"{r.request_id},{p},{item},1"
                      for p, item in enumerate([*first, r.item_ids[2]], start=1)]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    logged = run_json(invoke, empty_database_url, "--target-logging")
    ordered = run_json(invoke, empty_database_url, "--target-file",
                       target(tmp_path / "ordered.csv", False))
    reverse = run_json(invoke, empty_database_url, "--target-file",
                       target(tmp_path / "reverse.csv", True))
    per_list = np.array([sum(c["request_id"] == r.request_id for c in clicks)
                         for r in results], float)
    assert logged["requests"] == 60 and logged["impressions"] == 180
    assert logged["estimates"]["ips"]["value"] == pytest.approx(per_list.mean())
    assert ordered["matched_share"] == pytest.approx((2 * sum(in_order) + 60) / 180)
    assert (ordered["estimates"]["ips"]["value"] + reverse["estimates"]["ips"]["value"]
            == pytest.approx(2 * per_list.mean()))
