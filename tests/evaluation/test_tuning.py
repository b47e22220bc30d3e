"""Parameter search: candidates, cross-validation on shared folds, picking the best."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from marshmallow import RAISE, Schema, fields, validate

from recsdk import Plugin, hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.evaluation.files import check_interactions
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.specs import parse_grid, parse_space
from recsdk.evaluation.splits import kfold_splits
from recsdk.evaluation.tuning import (
    cross_validate,
    grid_candidates,
    random_candidates,
    search,
)
from recsdk.types import CandidateSet


class ParityParams(Schema):
    class Meta:
        unknown = RAISE

    prefer = fields.String(load_default="odd", validate=validate.OneOf(["odd", "even"]))


class Parity(Plugin):
    """Scores items whose number has the preferred parity first."""

    Params = ParityParams

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        numbers = np.array([int(i[1:]) for i in dataset.item_ids])
        self.even_ = (numbers % 2 == 0).astype(float)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str], candidates: CandidateSet) -> np.ndarray:
        row = self.even_ if self.params["prefer"] == "even" else 1 - self.even_
        return np.tile(row[candidates.codes], (len(user_ids), 1))


EXTRA = {"parity": Parity}


@pytest.fixture
def even_lovers() -> pd.DataFrame:
    """Users who mostly pick even-numbered items (and the odd one now and then)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(30):
        picks = rng.choice(np.arange(0, 40, 2), size=8, replace=False).tolist()
        picks += [int(rng.choice(np.arange(1, 40, 2)))]
        rows += [(f"u{u}", f"i{i}") for i in picks]
    return check_interactions(pd.DataFrame(rows, columns=["user", "item"]))


def test_grid_search_picks_the_parameters_the_data_favours(even_lovers):
    result = search(even_lovers, "parity", grid_candidates({"prefer": ["odd", "even"]}),
                    folds=3, metric="recall", k=5, extra_plugins=EXTRA)
    assert result.best_params == {"prefer": "even"}
    assert list(result.table["params"]) == [{"prefer": "odd"}, {"prefer": "even"}]
    assert all(len(scores) == 3 for scores in result.table["folds"])
    odd, even = result.table["mean"]
    assert even > odd and result.best_score == even
    summary = result.to_dict()
    assert summary["best_params"] == {"prefer": "even"} and len(summary["candidates"]) == 2


def test_lower_is_better_metrics_are_minimised(even_lovers):
    # even items are the popular ones here, so preferring odd ones lowers ARP
    result = search(even_lovers, "parity", grid_candidates({"prefer": ["even", "odd"]}),
                    folds=2, metric="arp", k=3, extra_plugins=EXTRA)
    even, odd = result.table["mean"]
    assert odd < even
    assert result.best_params == {"prefer": "odd"} and result.best_score == odd


def test_cross_validate_scores_each_fold(even_lovers):
    folds = kfold_splits(even_lovers, 3, seed=5)
    scores = cross_validate(PluginSpec("parity", "parity", {"prefer": "even"}), folds,
                            "ndcg", k=5, extra_plugins=EXTRA)
    assert scores.shape == (3,) and (scores > 0).all()


def test_random_candidates_are_reproducible_and_plain_python():
    space = parse_space(["alpha=loguniform:0.001:1", "factors=int:8:64", "mode=a,b"])
    first = random_candidates(space, 5, seed=3)
    assert first == random_candidates(space, 5, seed=3)
    assert first != random_candidates(space, 5, seed=4)
    for draw in first:
        assert 0.001 <= draw["alpha"] <= 1 and type(draw["alpha"]) is float
        assert 8 <= draw["factors"] <= 64 and type(draw["factors"]) is int
        assert draw["mode"] in {"a", "b"}


def test_grid_candidates_cover_every_combination():
    grid = parse_grid(["count=users,events", "window_days=null,30"])
    assert grid == {"count": ["users", "events"], "window_days": [None, 30]}
    assert len(grid_candidates(grid)) == 4
    assert grid_candidates({}) == [{}]


@pytest.mark.parametrize(("arguments", "message"), [
    (["alpha"], "expected KEY=VALUE"),
    (["alpha=uniform:1"], "expected uniform:LOW:HIGH"),
    (["alpha=uniform:2:1"], "LOW must be below HIGH"),
])
def test_bad_search_spaces_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        parse_space(arguments)


def test_bad_search_arguments(even_lovers):
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        search(even_lovers, "popularity", [{}], folds=2, metric="speed")
    with pytest.raises(ValueError, match="could not be computed"):
        search(even_lovers, "popularity", [{}], folds=2, metric="diversity")
    with pytest.raises(ValueError, match="n_iter must be at least 1"):
        random_candidates({"a": [1]}, 0, seed=1)
