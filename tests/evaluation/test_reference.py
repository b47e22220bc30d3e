"""Metrics on random rankings against independent implementations.

pytrec_eval (trec_eval) is the reference for precision, recall, NDCG, MAP, MRR and hit
rate; scikit-learn's ``roc_auc_score`` for AUC. Where our definition differs on purpose
(MAP@k normalised by min(|relevant|, k), as RecBole does, where trec_eval's ``map_cut``
divides by |relevant|) the test converts one into the other and says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
from sklearn.metrics import roc_auc_score

from recsdk.evaluation import metrics
from recsdk.evaluation.evaluator import evaluation_input
from recsdk.evaluation.files import check_interactions, check_recommendations

K = 10
N_ITEMS = 60


def random_case(seed: int, n_users: int = 40) -> tuple[pd.DataFrame, pd.DataFrame,
                                                       pd.DataFrame]:
    """Truth, training and ranking frames: 1-15 relevant items, lists of 0-14 items."""
    rng = np.random.default_rng(seed)
    truth, train, recs = [], [], []
    for u in range(n_users):
        order = rng.permutation(N_ITEMS)
        n_rel, n_seen = int(rng.integers(1, 16)), int(rng.integers(0, 6))
        relevant, seen = order[:n_rel], order[n_rel:n_rel + n_seen]
        truth += [(f"u{u}", f"i{i}") for i in relevant]
        train += [(f"u{u}", f"i{i}") for i in seen]
        candidates = np.setdiff1d(np.arange(N_ITEMS), seen)
        listed = rng.permutation(candidates)[: int(rng.integers(0, 15))]
        recs += [(f"u{u}", f"i{i}", rank) for rank, i in enumerate(listed, start=1)]
    train += [("someone", f"i{i}") for i in range(N_ITEMS)]  # every item in the universe
    return (check_interactions(pd.DataFrame(truth, columns=["user", "item"])),
            check_interactions(pd.DataFrame(train, columns=["user", "item"])),
            check_recommendations(pd.DataFrame(recs, columns=["user", "item", "rank"])))


def trec_eval(truth: pd.DataFrame, recs: pd.DataFrame, depth: int) -> dict[str, dict]:
    qrels: dict[str, dict[str, int]] = {}
    for row in truth.itertuples():
        qrels.setdefault(row.user, {})[row.item] = 1
    run: dict[str, dict[str, float]] = {}
    for row in recs[recs["rank"] <= depth].itertuples():
        run.setdefault(row.user, {})[row.item] = float(1000 - row.rank)  # distinct scores
    measures = {f"P_{K}", f"recall_{K}", f"ndcg_cut_{K}", f"map_cut_{K}", "recip_rank",
                f"success_{K}"}
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_metrics_match_trec_eval(seed):
    truth, train, recs = random_case(seed)
    table = evaluation_input(recs, truth, train=train).per_user(K)
    reference = trec_eval(truth, recs, depth=K)  # the run holds only the top k
    n_rel = truth.groupby("user").size()
    assert len(reference) > 20  # most users have a list; the rest are checked below
    for user, ref in reference.items():
        ours = table.loc[user]
        assert ours["precision"] == pytest.approx(ref[f"P_{K}"])
        assert ours["recall"] == pytest.approx(ref[f"recall_{K}"])
        assert ours["ndcg"] == pytest.approx(ref[f"ndcg_cut_{K}"])
        assert ours["mrr"] == pytest.approx(ref["recip_rank"])  # run cut at k: MRR@k
        assert ours["hit_rate"] == pytest.approx(ref[f"success_{K}"])
        # trec_eval's map_cut divides by |relevant|; ours (RecBole's) by min(|relevant|, k)
        rel = n_rel[user]
        assert ours["map"] * min(rel, K) == pytest.approx(ref[f"map_cut_{K}"] * rel)
    without_list = set(table.index) - set(reference)
    assert without_list  # users in the truth without recommendations score 0
    assert (table.loc[sorted(without_list), ["precision", "recall", "ndcg", "map", "mrr",
                                             "hit_rate"]] == 0).all().all()


def test_map_equals_trec_eval_map_cut_when_no_user_has_more_than_k_relevant():
    truth, train, recs = random_case(7)
    small = truth[truth.groupby("user")["item"].transform("size") <= K]
    recs = recs[recs["user"].isin(set(small["user"]))]
    table = evaluation_input(recs, small, train=train).per_user(K)
    for user, ref in trec_eval(small, recs, depth=K).items():
        assert table.loc[user, "map"] == pytest.approx(ref[f"map_cut_{K}"])


@pytest.mark.parametrize("seed", [0, 1])
def test_auc_matches_scikit_learn_with_unlisted_items_tied_last(seed):
    truth, train, recs = random_case(seed)
    data = evaluation_input(recs, truth, train=train)
    table = data.per_user(K)
    items = list(data.item_ids)
    for user in table.index:
        seen = set(train.loc[train["user"] == user, "item"])
        relevant = set(truth.loc[truth["user"] == user, "item"])
        top = recs[(recs["user"] == user) & (recs["rank"] <= K)]
        score = dict(zip(top["item"], K + 1 - top["rank"], strict=True))  # unlisted: 0
        candidates = [i for i in items if i not in seen]
        labels = [i in relevant for i in candidates]
        expected = roc_auc_score(labels, [score.get(i, 0) for i in candidates])
        assert table.loc[user, "auc"] == pytest.approx(expected)


def test_gini_matches_the_mean_absolute_difference_form():
    values = np.random.default_rng(5).integers(0, 50, size=200).astype(float)
    pairwise = np.abs(values[:, None] - values[None, :]).sum()
    expected = pairwise / (2 * len(values) ** 2 * values.mean())
    assert metrics.gini(values) == pytest.approx(expected)


def test_novelty_and_coverage_from_the_training_frame():
    truth, train, recs = random_case(3)
    result = evaluation_input(recs, truth, train=train).metrics_at(K)
    top = recs[recs["rank"] <= K]
    counts = train.drop_duplicates().groupby("item")["user"].nunique()
    n_users = train["user"].nunique()
    per_user = top.assign(si=-np.log2(top["item"].map(counts) / n_users)) \
        .groupby("user")["si"].mean()
    assert result["novelty"] == pytest.approx(per_user.mean())
    assert result["coverage"] == pytest.approx(top["item"].nunique() / N_ITEMS)
