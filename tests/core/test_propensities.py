"""Propensities of a stochastic reranker reach the served items, the impressions table
(SQLite and PostgreSQL) and ``recsdk_served``; such lists are never cached, and a
reranker whose propensities are not probabilities is skipped."""

from __future__ import annotations

from typing import ClassVar

import pytest
from sqlalchemy import select

from recsdk import Plugin, hookimpl
from recsdk.storage import models
from recsdk.types import Ranking
from tests.core.shop import fill, shop_rows

K = 4


class Drawing(Plugin):
    """Keeps the ranking's order and claims it drew each of the first K - 1 items with
    probability 1/2, 1/3, ...; the last one it did not choose (None)."""

    propensities: ClassVar[list[float | None] | None] = None
    served: ClassVar[list] = []
    calls: ClassVar[int] = 0

    @hookimpl(trylast=True)
    def recsdk_rerank(self, ranking):
        type(self).calls += 1
        claimed = type(self).propensities
        if claimed is None:
            claimed = [1.0 / (p + 2) for p in range(K - 1)] + [None]
        ids = ranking.item_ids[:len(claimed)]
        return Ranking(ids, ranking.scores[:len(ids)], claimed[:len(ids)])

    @hookimpl
    def recsdk_served(self, result):
        type(self).served.append([i.propensity for i in result.items])


@pytest.fixture
def drawing():
    Drawing.propensities, Drawing.served, Drawing.calls = None, [], 0
    return Drawing


def trained(make_sdk, config: dict | None = None):
    sdk = make_sdk({"plugins": {"popularity": {}, "drawing": {}},
                    "cache": {"result_ttl_s": 60}, **(config or {})},
                   plugins={"drawing": Drawing})
    fill(sdk, shop_rows())
    sdk.fit()
    return sdk


def stored(sdk, request_id: str) -> list[tuple[int, float | None]]:
    sdk.request_log.flush()
    imp = models.Impression.__table__
    with sdk.store.engine.connect() as conn:
        rows = conn.execute(select(imp.c.position, imp.c.propensity)
                            .where(imp.c.request_id == request_id)
                            .order_by(imp.c.position)).all()
    return [tuple(r) for r in rows]


def expected() -> list[float | None]:
    return [1 / 2, 1 / 3, 1 / 4, None]


def test_propensities_are_served_stored_and_reported(make_sdk, drawing):
    sdk = trained(make_sdk)
    result = sdk.recommend("stranger", k=K)
    assert [i.propensity for i in result.items] == pytest.approx(expected())
    assert result.to_dict()["items"][0]["propensity"] == pytest.approx(0.5)
    assert stored(sdk, result.request_id) == [
        (p + 1, q) for p, q in enumerate(expected())]
    sdk.served.join()
    assert drawing.served[-1] == expected()


def test_stochastic_lists_are_drawn_for_every_request(make_sdk, drawing):
    sdk = trained(make_sdk)
    sdk.recommend("stranger", k=K)
    sdk.recommend("stranger", k=K)
    assert drawing.calls == 2  # the second was not replayed from the result cache


def test_deterministic_lists_are_cached_and_log_no_propensity(make_sdk, drawing):
    drawing.propensities = [None] * K
    sdk = trained(make_sdk)
    first = sdk.recommend("stranger", k=K)
    sdk.recommend("stranger", k=K)
    assert drawing.calls == 1
    assert [p for _, p in stored(sdk, first.request_id)] == [None] * K


@pytest.mark.parametrize("bad", [[0.0, 0.5, 0.5, 0.5], [1.5, 0.5, 0.5, 0.5],
                                 [float("nan"), 0.5, 0.5, 0.5]])
def test_propensities_outside_0_1_skip_the_reranker(make_sdk, drawing, bad):
    drawing.propensities = bad
    sdk = trained(make_sdk)
    result = sdk.recommend("stranger", k=K)
    assert all(i.propensity is None for i in result.items)
    assert result.degraded
    assert any("propensities outside (0, 1]" in f for f in result.failures)


def test_a_short_list_keeps_propensities_and_fills_with_none(make_sdk, drawing):
    # keeps one item per chain: the fallback's ranking, reranked too, adds one more,
    # whose propensity (drawn for the fallback list's first place) is not logged
    drawing.propensities = [0.25]
    sdk = trained(make_sdk)
    result = sdk.recommend("stranger", k=K)
    assert [i.propensity for i in result.items] == [0.25, None]
    assert result.items[1].source == "popularity"


def test_ranking_keeps_propensities_aligned():
    ranking = Ranking(["a", "b", "c"], [3.0, 2.0, 1.0], [0.5, None, 0.25])
    assert ranking.keep([True, False, True]).propensities == [0.5, 0.25]
    assert ranking.head(2).propensities == [0.5, None]
    with pytest.raises(ValueError, match="3 items but 2 propensities"):
        Ranking(["a", "b", "c"], [3.0, 2.0, 1.0], [0.5, 0.5])


@pytest.mark.postgres
def test_propensities_are_stored_on_postgres(make_sdk, postgres_url, drawing):
    sdk = trained(make_sdk, {"database_url": postgres_url})
    result = sdk.recommend("stranger", k=K)
    assert stored(sdk, result.request_id) == [
        (p + 1, q) for p, q in enumerate(expected())]
