"""Comparing plugins on a split: both evaluation modes agree, and their edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.errors import ValidationFailed
from recsdk.evaluation.comparison import (
    compare_plugins,
    evaluate_plugin,
    evaluate_recommendations,
    held_out_truth,
)
from recsdk.evaluation.evaluator import METRICS, evaluation_input, rating_errors
from recsdk.evaluation.files import check_interactions
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.splits import random_split

POPULARITY = PluginSpec("popularity", "popularity")


@pytest.fixture
def split(interactions):
    return random_split(interactions, 0.25, seed=1)


def test_scoring_a_plugins_saved_lists_gives_the_plugins_own_numbers(split):
    run = evaluate_plugin(POPULARITY, split.train, split.test, k=5, keep_recommendations=True)
    again = evaluate_recommendations("file", run.recommendations,
                                     held_out_truth(split.train, split.test), k=5,
                                     train=split.train)
    assert run.main == again.main
    assert run.fit_seconds is not None and run.score_seconds is not None
    assert set(METRICS) <= set(run.main)


def test_every_test_user_is_scored_and_lists_are_k_long(split):
    run = evaluate_plugin(POPULARITY, split.train, split.test, k=4, ks=(2, 8),
                          keep_recommendations=True)
    assert sorted(run.metrics) == [2, 4, 8]
    assert run.main["users"] == split.test["user"].nunique()
    assert (run.recommendations.groupby("user").size() == 4).all()  # the main k
    assert run.metrics[2]["recall"] <= run.metrics[4]["recall"] <= run.metrics[8]["recall"]


def test_held_out_truth_drops_training_pairs_and_repeats():
    train = check_interactions(pd.DataFrame({"user": ["u", "u"], "item": ["a", "b"]}))
    test = check_interactions(pd.DataFrame({"user": ["u", "u", "u", "v"],
                                            "item": ["a", "c", "c", "a"]}))
    assert held_out_truth(train, test).values.tolist() == [["u", "c"], ["v", "a"]]
    with pytest.raises(ValidationFailed, match="empty test set"):
        held_out_truth(train, train)


def test_sampled_negatives_can_only_raise_recall(split):
    full = evaluate_plugin(POPULARITY, split.train, split.test, k=5)
    sampled = evaluate_plugin(POPULARITY, split.train, split.test, k=5, negatives=3, seed=2)
    assert sampled.main["recall"] >= full.main["recall"]
    assert sampled.main["recall"] > 0


def test_catalogue_and_embeddings_give_diversity(split, interactions):
    items = pd.DataFrame({"item": sorted(interactions["item"].unique())})
    items["category"] = ["odd" if int(i[1:]) % 2 else "even" for i in items["item"]]
    vectors = np.random.default_rng(0).normal(size=(len(items), 4))
    run = evaluate_plugin(PluginSpec("cat", "category_popularity"), split.train, split.test,
                          k=5, items=items, embeddings=(items["item"].to_numpy(), vectors))
    assert 0 <= run.main["diversity"] <= 1
    assert 0 <= run.main["diversity_embedding"] <= 2
    plain = evaluate_plugin(POPULARITY, split.train, split.test, k=5)
    assert plain.main["diversity"] is None and plain.main["diversity_embedding"] is None


def test_compare_plugins_gives_one_row_per_label_and_refuses_repeats(split):
    specs = [POPULARITY, PluginSpec("recent", "trending", {"half_life_hours": 1.0})]
    runs = compare_plugins(specs, split.train, split.test, k=3)
    assert [r.label for r in runs] == ["popularity", "recent"]
    assert runs[1].params == {"half_life_hours": 1.0}
    with pytest.raises(ValueError, match="given twice"):
        compare_plugins([POPULARITY, POPULARITY], split.train, split.test)


def test_without_training_data_popularity_metrics_are_none():
    truth = check_interactions(pd.DataFrame({"user": ["u"], "item": ["a"]}))
    recs = pd.DataFrame({"user": ["u", "u"], "item": ["b", "a"], "rank": [1, 2],
                         "score": np.nan})
    result = evaluation_input(recs, truth).metrics_at(2)
    assert result["novelty"] is None and result["arp"] is None
    assert result["recall"] == 1.0 and result["mrr"] == 0.5
    assert result["coverage"] == 1.0  # universe: the items of truth and recommendations


def test_an_empty_truth_frame_is_an_error_not_a_zero():
    truth = check_interactions(pd.DataFrame({"user": [], "item": []}), allow_empty=True)
    recs = pd.DataFrame({"user": [], "item": [], "rank": [], "score": []})
    with pytest.raises(ValidationFailed, match="empty test set"):
        evaluation_input(recs, truth)


def test_rating_errors_need_a_prediction_for_every_truth_pair():
    truth = check_interactions(pd.DataFrame({"user": ["u", "u"], "item": ["a", "b"],
                                             "rating": [4, 2]}))
    predicted = check_interactions(pd.DataFrame({"user": ["u", "u"], "item": ["a", "b"],
                                                 "rating": [5, 2]}))
    assert rating_errors(truth, predicted) == {"rmse": pytest.approx(np.sqrt(0.5)),
                                               "mae": pytest.approx(0.5), "pairs": 2.0}
    with pytest.raises(ValidationFailed, match="row 2: 1 \\(user, item\\) pair"):
        rating_errors(truth, predicted.iloc[:1])
    unrated = truth.assign(rating=[4.0, np.nan])
    with pytest.raises(ValidationFailed, match="row 2: empty rating"):
        rating_errors(unrated, predicted)
    with pytest.raises(ValidationFailed, match="missing column 'rating'"):
        rating_errors(truth.drop(columns="rating"), predicted)
