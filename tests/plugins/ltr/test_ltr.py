"""The ltr final ranker on a tiny planted shop: it learns what the blend misses, keeps
its model through the registry, is deterministic, reports importances and refuses bad
configurations by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.ltr import LearningToRank, blend_prior
from recsdk_plugins.ltr.stacking import carve

from recsdk import RecSDK
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError, PluginError
from recsdk.types import CandidateSet, RecommendationRequest

N_USERS, N_ITEMS, N_CATEGORIES = 80, 48, 4
#: each user's held-out items, by user (in the favourite category)
HELD = 2
FAST = {"n_estimators": 60, "early_stopping_rounds": 10, "min_child_samples": 5,
        "num_leaves": 7, "learning_rate": 0.2}


def planted(seed: int = 0) -> tuple[dict[str, list[dict[str, Any]]], dict[str, set[str]]]:
    """Items cycle through four categories; popularity falls with the item number over
    all categories. Each user views items of one favourite category only, so the best
    list for a user is their category's items, which popularity alone ignores. Returns
    the store rows and each user's held-out items (not in the rows)."""
    rng = np.random.default_rng(seed)
    categories = [{"id": "all", "name": "All"}] + [
        {"id": f"c{c}", "parent_id": "all"} for c in range(N_CATEGORIES)]
    items = [{"id": f"i{i}", "title": f"Item {i}", "category_id": f"c{i % N_CATEGORIES}",
              "price": 10.0, "stock": 5} for i in range(N_ITEMS)]
    popularity = 1.0 / (1.0 + np.arange(N_ITEMS)) ** 0.5
    events, held = [], {}
    for u in range(N_USERS):
        mine = np.arange(u % N_CATEGORIES, N_ITEMS, N_CATEGORIES)
        p = popularity[mine] / popularity[mine].sum()
        chosen = rng.choice(mine, size=7, replace=False, p=p)
        held[f"u{u}"] = {f"i{i}" for i in chosen[:HELD]}
        for t, i in enumerate(chosen[HELD:]):
            events.append({"user_id": f"u{u}", "item_id": f"i{i}", "type": "view",
                           "timestamp": 1_700_000_000 + 3600 * (u * 10 + t)})
    # a crowd of anonymous-taste users makes popularity global, across categories
    for u in range(40):
        for i in rng.choice(N_ITEMS, size=6, replace=False, p=popularity / popularity.sum()):
            events.append({"user_id": f"crowd{u}", "item_id": f"i{i}", "type": "view",
                           "timestamp": 1_700_000_000 + 3600 * t})
    return {"categories": categories, "items": items, "events": events}, held


def config(tmp_path: Path, ltr: dict[str, Any] | None = None, with_ltr: bool = True,
           seed: int = 42) -> dict[str, Any]:
    plugins: dict[str, Any] = {"popularity": {"weight": 1.0}}
    if with_ltr:
        plugins["ltr"] = {**FAST, **(ltr or {})}
    return {"database_url": f"sqlite:///{tmp_path / 'shop.db'}", "seed": seed,
            "models": {"artifact_dir": str(tmp_path / "artifacts")},
            "pipeline": {"rank_depth": 20}, "plugins": plugins}


def trained(cfg: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> RecSDK:
    sdk = RecSDK(cfg, environ={})
    sdk.upsert_categories(rows["categories"])
    sdk.upsert_items(rows["items"])
    sdk.track_many(rows["events"])
    sdk.fit()
    return sdk


def hits(sdk: RecSDK, held: dict[str, set[str]], k: int = 5) -> float:
    return float(np.mean([len(set(sdk.recommend(u, k=k, log_request=False).item_ids) & items)
                          for u, items in held.items()]))


def lists(sdk: RecSDK, users: list[str]) -> list[list[str]]:
    return [sdk.recommend(u, k=8, log_request=False).item_ids for u in users]


@pytest.fixture(scope="module")
def shop() -> tuple[dict[str, list[dict[str, Any]]], dict[str, set[str]]]:
    return planted()


@pytest.mark.parametrize("prior", [0.0, 1.0])
def test_learns_what_the_blend_misses_and_reports_importances(tmp_path: Path, shop,
                                                              prior: float) -> None:
    rows, held = shop
    with trained(config(tmp_path / "blend", with_ltr=False), rows) as blend:
        baseline = hits(blend, held)
    with trained(config(tmp_path / "ltr", {"blend_prior": prior}), rows) as sdk:
        ranked = hits(sdk, held)
        result = sdk.recommend("u1", k=5, log_request=False)
        assert "ltr" in result.plugins and not result.degraded
        report = sdk.plugins.get("ltr").report_
    assert ranked > baseline + 0.3, (ranked, baseline)
    assert report.ndcg_ranker > report.ndcg_blend
    assert report.best_iteration >= 1 and report.depth == 20
    shares = report.importances
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert next(iter(shares)) == "interest.category"  # the planted signal leads
    assert "popularity.score" in shares and "| interest.category |" in report.table()


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_state_round_trip_through_the_registry_gives_identical_lists(tmp_path: Path, shop,
                                                                     prior: float) -> None:
    rows, held = shop
    users = [*sorted(held)[:12], "stranger"]
    cfg = config(tmp_path, {"blend_prior": prior})
    with trained(cfg, rows) as sdk:
        before = lists(sdk, users)
        saved = sdk.model_run
    with RecSDK(cfg, environ={}) as other:
        assert other.model_run == saved
        assert lists(other, users) == before
        assert "ltr" in other.recommend("u3", k=5, log_request=False).plugins


def test_deterministic_by_seed(tmp_path: Path, shop) -> None:
    rows, held = shop
    users = sorted(held)[:10]
    with trained(config(tmp_path / "a"), rows) as a:
        first, text = lists(a, users), a.plugins.get("ltr").model_text_
    with trained(config(tmp_path / "b"), rows) as b:
        assert lists(b, users) == first
        assert b.plugins.get("ltr").model_text_ == text
    with trained(config(tmp_path / "c", seed=7), rows) as c:
        assert c.plugins.get("ltr").model_text_ != text


def test_blend_prior_falls_linearly_from_the_weight_over_each_list() -> None:
    assert np.allclose(blend_prior([3, 2], depth=4, weight=2.0), [2.0, 1.5, 1.0, 2.0, 1.5])
    assert not blend_prior([3, 2], depth=4, weight=0.0).any()
    assert blend_prior([], depth=4, weight=1.0).shape == (0,)


def test_with_a_dominant_prior_and_no_learning_the_served_order_is_the_blends(
        tmp_path: Path, shop) -> None:
    """The prior is added at serving as in training: corrections of a near-untrained
    booster cannot overturn it, so the lists are the blend's."""
    rows, held = shop
    users = sorted(held)[:15]
    with trained(config(tmp_path / "blend", with_ltr=False), rows) as blend:
        expected = lists(blend, users)
    frozen = {"blend_prior": 5.0, "n_estimators": 1, "learning_rate": 1e-4}
    with trained(config(tmp_path / "ltr", frozen), rows) as sdk:
        assert lists(sdk, users) == expected
        assert "ltr" in sdk.recommend(users[0], k=5, log_request=False).plugins


def test_state_saved_before_the_prior_existed_serves_without_it(tmp_path: Path, shop) -> None:
    rows, _ = shop
    with trained(config(tmp_path, {"blend_prior": 0.0}), rows) as sdk:
        ranker = sdk.plugins.get("ltr")
        state = dict(ranker.recsdk_save_state())
        assert list(state.pop("blend_prior")) == [20.0, 0.0]
        old = LearningToRank.from_config(FAST, "ltr")
        old.recsdk_load_state(state, sdk.read_training_data()[0])
        assert (old.depth_, old.prior_) == (0, 0.0)
        request = RecommendationRequest(user_id="u1", k=5)
        candidates = CandidateSet(np.array([f"i{i}" for i in range(20)]), np.arange(20))
        scores = {"popularity": np.linspace(1.0, 0.0, 20)}
        assert np.array_equal(old.recsdk_rank(request, candidates, scores),
                              ranker.recsdk_rank(request, candidates, scores))


@pytest.mark.parametrize(("params", "name"), [
    ({"validation_share": 0.9}, "validation_share"),
    ({"validation_split": "weekly"}, "validation_split"),
    ({"num_leaves": 1}, "num_leaves"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"depth": 100}, "depth"),
    ({"blend_prior": -1.0}, "blend_prior"),
    ({"blend_prior": 6.0}, "blend_prior"),
])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        LearningToRank.from_config(params, "ltr")


def test_ltr_without_another_scorer_is_a_clear_error(tmp_path: Path, shop) -> None:
    rows, _ = shop
    cfg = config(tmp_path)
    cfg["plugins"] = {"popularity": {"weight": 0.0}, "ltr": FAST}
    with pytest.raises(PluginError, match=r"ltr.*needs scoring plugins.*weight > 0"):
        trained(cfg, rows).close()


def test_carved_split_keeps_vocabularies_and_holds_out_per_user() -> None:
    rng = np.random.default_rng(3)
    frame_rows = [{"user_id": f"u{u}", "item_id": f"i{i}", "timestamp": float(t)}
                  for t, (u, i) in enumerate({(int(rng.integers(20)), int(rng.integers(30)))
                                              for _ in range(300)})]
    dataset = InteractionDataset.from_frame(pd.DataFrame(frame_rows))
    for how in ("random", "time"):
        rest, held = carve(dataset, 0.25, how, seed=1)
        assert list(rest.item_ids) == list(dataset.item_ids)
        assert len(held) + len(rest.interactions) == len(dataset.interactions)
        assert set(rest.interactions["user"]) == set(dataset.interactions["user"])
        share = len(held) / len(dataset.interactions)
        assert 0.15 < share < 0.3
    # by time: every held-out pair is at least as late as the user's kept ones
    rest, held = carve(dataset, 0.25, "time", seed=1)
    inter = dataset.interactions
    t = inter.set_index(["user", "item"])["timestamp"]
    kept_last = rest.interactions.groupby("user")["timestamp"].max()
    for u, i in zip(held["user"], held["item"], strict=True):
        assert t[(u, i)] >= kept_last[u]
