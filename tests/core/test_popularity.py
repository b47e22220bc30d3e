"""The popularity plugins' batch scoring agrees with their per-request scoring."""

from __future__ import annotations

import numpy as np

from recsdk.types import RecommendationRequest, UserHistory
from tests.core.shop import fill


def test_batch_and_single_scores_agree(make_sdk):
    sdk = make_sdk({"plugins": {"popularity": {}, "category_popularity": {},
                                "trending": {}}})
    fill(sdk)
    sdk.fit()
    state = sdk._state
    users = ["u1", "u2", "u7", "stranger"]
    for name in ("popularity", "category_popularity", "trending"):
        (answer,) = sdk.plugins.call_each("recsdk_score_users", only=[name], user_ids=users,
                                          candidates=state.all_candidates)
        batch = answer.value
        assert batch.shape == (len(users), len(state.all_candidates))
        for row, user in zip(batch, users, strict=True):
            items = list(state.dataset.item_ids[state.dataset.user_items(user)])
            request = RecommendationRequest(
                user_id=user, k=5, catalog=state.catalog,
                history=UserHistory(items, ["view"] * len(items)))
            (single,) = sdk.plugins.call_each("recsdk_score", only=[name], request=request,
                                              candidates=state.all_candidates)
            single = single.value
            if single is None:  # abstains for users without history
                assert np.isnan(row).all()
            else:
                np.testing.assert_allclose(row, single)


def test_unfitted_plugins_abstain(make_sdk):
    sdk = make_sdk({"plugins": {"popularity": {}, "category_popularity": {},
                                "trending": {}}})
    fill(sdk)
    candidates = sdk._state.all_candidates
    answers = sdk.plugins.call_each("recsdk_score_users", user_ids=["u1"],
                                    candidates=candidates)
    assert {a.plugin for a in answers} == {"popularity", "category_popularity", "trending"}
    assert all(a.ok and a.value is None for a in answers)
