"""Each metric against a case small enough to compute by hand (the arithmetic is shown)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsdk.evaluation import metrics


def relevant_matrix(sets: list[set[int]], n_items: int) -> sp.csr_matrix:
    rows = [u for u, items in enumerate(sets) for _ in items]
    cols = [i for items in sets for i in sorted(items)]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), n_items))


# user 0: list [1, 2, 3, 4], relevant {2, 4, 9}: hits at positions 2 and 4
# user 1: list [5] then nothing, relevant {7}: no hit
RANKED = np.array([[1, 2, 3, 4], [5, -1, -1, -1]])
RELEVANT = relevant_matrix([{2, 4, 9}, {7}], n_items=10)
N_REL = np.array([3, 1])


@pytest.fixture
def hits() -> np.ndarray:
    return metrics.hit_matrix(RANKED, RELEVANT)


def test_hit_matrix_marks_relevant_positions_and_ignores_padding(hits):
    assert hits.tolist() == [[False, True, False, True], [False, False, False, False]]


def test_hit_matrix_with_no_relevant_item_at_all():
    empty = sp.csr_matrix((2, 10))
    assert not metrics.hit_matrix(RANKED, empty).any()


def test_precision_divides_by_k_even_for_a_short_list(hits):
    assert metrics.precision(hits).tolist() == [2 / 4, 0.0]


def test_recall_divides_by_all_relevant_items(hits):
    assert metrics.recall(hits, N_REL).tolist() == pytest.approx([2 / 3, 0.0])


def test_f1_is_the_per_user_harmonic_mean(hits):
    p, r = 0.5, 2 / 3
    assert metrics.f1(hits, N_REL).tolist() == pytest.approx([2 * p * r / (p + r), 0.0])


def test_ndcg_uses_log2_discount_and_ideal_over_min_relevant_k(hits):
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at positions 2 and 4
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(3, 4) = 3 ideal hits
    assert metrics.ndcg(hits, N_REL).tolist() == pytest.approx([dcg / ideal, 0.0])


def test_ndcg_ideal_is_cut_at_k_when_more_items_are_relevant():
    hits = np.array([[True, True]])  # k = 2, five relevant items: ideal = 2 hits
    assert metrics.ndcg(hits, np.array([5])).tolist() == pytest.approx([1.0])


def test_average_precision_divides_by_min_relevant_k(hits):
    ap = (1 / 2 + 2 / 4) / min(3, 4)  # precision at each hit, over min(|rel|, k)
    assert metrics.average_precision(hits, N_REL).tolist() == pytest.approx([ap, 0.0])


def test_reciprocal_rank_of_the_first_hit(hits):
    assert metrics.reciprocal_rank(hits).tolist() == [1 / 2, 0.0]


def test_hit_rate(hits):
    assert metrics.hit_rate(hits).tolist() == [1.0, 0.0]


def test_auc_counts_ranked_pairs_and_half_of_ties():
    # six candidates, relevant {a, d}; list [a, b, c]; d, e, f unlisted and tied.
    # a is above all 4 negatives: 4 pairs; d ties with e, f: 2 x 0.5; below b, c: 0.
    hits = np.array([[True, False, False]])
    listed_negative = np.array([[False, True, True]])
    value = metrics.auc(hits, listed_negative, np.array([2]), np.array([4]))
    assert value.tolist() == pytest.approx([5 / 8])


def test_auc_is_undefined_without_negatives():
    value = metrics.auc(np.array([[True]]), np.array([[False]]), np.array([1]), np.array([0]))
    assert np.isnan(value[0])


def test_auc_of_a_perfect_and_a_reversed_list():
    perfect = metrics.auc(np.array([[True, False]]), np.array([[False, True]]),
                          np.array([1]), np.array([1]))
    reversed_ = metrics.auc(np.array([[False, True]]), np.array([[True, False]]),
                            np.array([1]), np.array([1]))
    assert perfect.tolist() == [1.0]
    assert reversed_.tolist() == [0.0]


def test_coverage_counts_distinct_listed_items_over_catalogue():
    assert metrics.coverage(np.array([[0, 1], [1, 2], [-1, -1]]), 5) == 3 / 5


def test_novelty_is_mean_self_information_with_unseen_items_counted_once():
    popularity = np.array([4.0, 2.0, 1.0, 0.0])  # of 4 training users
    # self-information: -log2(4/4)=0, -log2(2/4)=1, -log2(1/4)=2, unseen as 1 -> 2
    novelty = metrics.novelty(np.array([[0, 1], [2, 3], [-1, -1]]), popularity, 4)
    assert novelty[:2].tolist() == [0.5, 2.0]
    assert np.isnan(novelty[2])


def test_average_popularity_of_listed_items():
    arp = metrics.average_popularity(np.array([[0, 1], [2, -1]]), np.array([4.0, 2.0, 1.0]))
    assert arp.tolist() == [3.0, 1.0]


def test_exposure_and_gini():
    exposure = metrics.exposure(np.array([[3, 3], [3, -1]]), 4)
    assert exposure.tolist() == [0.0, 0.0, 0.0, 3.0]
    # sorted x = [0, 0, 0, 3]: sum((2i - n - 1) x_i) / (n sum x) = (3 * 3) / (4 * 3)
    assert metrics.gini(exposure) == pytest.approx(3 / 4)
    assert metrics.gini(np.ones(5)) == 0.0
    assert metrics.gini(np.zeros(3)) == 0.0


def test_category_diversity_is_mean_pairwise_jaccard_distance():
    # items: 0 {A}, 1 {A}, 2 {B}, 3 {A, B}, 4 no category
    categories = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 0]]))
    ranked = np.array([[0, 1, 2], [0, 3, -1], [0, 4, -1]])
    value = metrics.category_diversity(ranked, categories)
    # [0,1,2]: pairs 0-1 same, 0-2 and 1-2 different -> 2/3
    # [0,3]: |{A}&{A,B}| / |{A}|{A,B}| = 1/2 -> distance 1/2
    # [0,4]: item 4 has no category, no pair left -> undefined
    assert value[:2].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert np.isnan(value[2])


def test_embedding_diversity_is_mean_pairwise_cosine_distance():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [np.nan, np.nan]])
    value = metrics.embedding_diversity(np.array([[0, 1], [0, 2], [0, 3]]), vectors)
    assert value[:2].tolist() == pytest.approx([1.0, 1 - 1 / math.sqrt(2)])
    assert np.isnan(value[2])


def test_diversity_chunks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    ranked = rng.integers(0, 20, size=(30, 5))
    categories = sp.csr_matrix(rng.integers(0, 2, size=(20, 4)))
    vectors = rng.normal(size=(20, 3))
    whole = (metrics.category_diversity(ranked, categories),
             metrics.embedding_diversity(ranked, vectors))
    monkeypatch.setattr(metrics, "PAIR_CHUNK", 25)  # 2 users per chunk
    chunked = (metrics.category_diversity(ranked, categories),
               metrics.embedding_diversity(ranked, vectors))
    np.testing.assert_allclose(chunked[0], whole[0])
    np.testing.assert_allclose(chunked[1], whole[1])


def test_rmse_and_mae():
    truth, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0])
    assert metrics.rmse(truth, predicted) == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert metrics.mae(truth, predicted) == pytest.approx(1.0)
