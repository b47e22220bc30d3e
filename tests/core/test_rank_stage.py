"""Stage 3b, ``recsdk_rank``: a final ranker reorders the blend's best candidates, and one
that abstains, fails or answers the wrong shape leaves the blend's order standing."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recsdk import Plugin, hookimpl
from tests.core.shop import fill, shop_rows

DEPTH = 5


class Reversing(Plugin):
    """Ranks the blend's best candidates in the opposite order of popularity's answer;
    records what it was handed."""

    seen: ClassVar[list] = []

    @hookimpl
    def recsdk_rank(self, request, candidates, scores):
        type(self).seen.append((list(candidates.ids), {k: v.copy() for k, v in scores.items()}))
        return -scores["popularity"]


class HalfBlind(Plugin):
    """Scores only the 2nd and 4th candidate, the 4th above the 2nd."""

    @hookimpl
    def recsdk_rank(self, candidates):
        out = np.full(len(candidates), np.nan)
        out[1], out[3] = 1.0, 2.0
        return out


class Tying(Plugin):
    """Gives the 3rd and 5th candidate the top score, the rest one lower score."""

    @hookimpl
    def recsdk_rank(self, candidates):
        out = np.zeros(len(candidates))
        out[[2, 4]] = 1.0
        return out


class Abstaining(Plugin):
    @hookimpl
    def recsdk_rank(self, candidates):
        return None


class Raising(Plugin):
    @hookimpl
    def recsdk_rank(self, candidates):
        raise RuntimeError("ranker model missing")


class WrongShape(Plugin):
    @hookimpl
    def recsdk_rank(self, candidates):
        return np.ones(len(candidates) + 1)


class Silent(Plugin):
    """A scorer that abstains for every request."""

    @hookimpl
    def recsdk_score(self, candidates):
        return None


def served(make_sdk, ranker: type, extra: dict | None = None):
    config = {"plugins": {"popularity": {}, "ranker": {}, **(extra or {})},
              "pipeline": {"rank_depth": DEPTH}}
    plugins = {"ranker": ranker, **({"silent": Silent} if extra else {})}
    sdk = make_sdk(config, plugins=plugins)
    fill(sdk, shop_rows())
    sdk.fit()
    return sdk


def blend_order(make_sdk) -> list[str]:
    sdk = make_sdk({"plugins": {"popularity": {}}})
    fill(sdk, shop_rows())
    sdk.fit()
    return sdk.recommend("stranger", k=10).item_ids


def test_ranker_reorders_the_depth_and_the_rest_keeps_blend_order(make_sdk):
    expected = blend_order(make_sdk)
    Reversing.seen = []
    sdk = served(make_sdk, Reversing, {"silent": {}})
    result = sdk.recommend("stranger", k=10)
    assert result.item_ids == expected[:DEPTH][::-1] + expected[DEPTH:]
    assert not result.degraded and "ranker" in result.plugins
    ids, scores = Reversing.seen[-1]
    assert ids == expected[:DEPTH]  # the blend's best, best first
    assert set(scores) == {"popularity", "silent"}
    assert all(len(v) == DEPTH for v in scores.values())
    assert np.isnan(scores["silent"]).all()  # abstained: all NaN
    assert np.all(np.diff(scores["popularity"]) <= 0)  # raw answers, in blend order
    # scores stay ordered: the ranker's on top, the rest below
    assert all(a.score >= b.score for a, b in zip(result.items, result.items[1:], strict=False))


def test_candidates_the_ranker_leaves_nan_follow_the_ones_it_scored(make_sdk):
    expected = blend_order(make_sdk)
    result = served(make_sdk, HalfBlind).recommend("stranger", k=8)
    top = expected[:DEPTH]
    assert result.item_ids == [top[3], top[1], top[0], top[2], top[4], *expected[DEPTH:8]]


def test_ties_in_the_ranker_s_scores_keep_the_blend_order(make_sdk):
    expected = blend_order(make_sdk)
    # without the two most popular, the blend's order is not the ids' order
    result = served(make_sdk, Tying).recommend("stranger", k=DEPTH, exclude=expected[:2])
    top = expected[2:2 + DEPTH]
    assert sorted(top) != top
    assert result.item_ids == [top[2], top[4], top[0], top[1], top[3]]


def test_abstaining_ranker_leaves_the_blend(make_sdk):
    expected = blend_order(make_sdk)
    result = served(make_sdk, Abstaining).recommend("stranger", k=10)
    assert result.item_ids == expected and not result.degraded
    assert "ranker" not in result.plugins


def test_failing_ranker_leaves_the_blend_and_degrades(make_sdk):
    expected = blend_order(make_sdk)
    sdk = served(make_sdk, Raising)
    result = sdk.recommend("stranger", k=10)
    assert result.item_ids == expected
    assert result.degraded and any("ranker" in f and "missing" in f for f in result.failures)
    assert sdk.telemetry.value("recsdk_plugin_failures", plugin="ranker",
                               hook="recsdk_rank", kind="error") == 1


def test_wrong_shape_is_rejected(make_sdk):
    expected = blend_order(make_sdk)
    result = served(make_sdk, WrongShape).recommend("stranger", k=10)
    assert result.item_ids == expected and result.degraded
    assert any("ranker.rank" in f and "shape" in f for f in result.failures)


def test_excluded_items_never_reach_the_ranker(make_sdk):
    expected = blend_order(make_sdk)
    Reversing.seen = []
    sdk = served(make_sdk, Reversing)
    result = sdk.recommend("stranger", k=6, exclude=expected[:2])
    assert Reversing.seen[-1][0] == expected[2:2 + DEPTH]
    # popularity's best (i0, i1) excluded; reversed, the most popular left come last
    assert set(result.item_ids[:DEPTH]) == set(expected[2:2 + DEPTH])
    assert result.item_ids[DEPTH - 2:] == [expected[3], expected[2], expected[2 + DEPTH]]
