"""Predicted stars through the SDK and REST: stored users, new raters, unknown items."""

from __future__ import annotations

import numpy as np

from recsdk import RecSDK
from recsdk.api import create_app


def test_rating_mf_answers_predict_ratings_and_folds_in_a_new_rater(tmp_path) -> None:
    rng = np.random.default_rng(3)
    taste = {f"u{n}": (1 if n % 2 else -1) for n in range(30)}
    kind = {f"i{n}": (1 if n % 2 else -1) for n in range(12)}
    rows = []
    for user, t in taste.items():
        for item in rng.choice(list(kind), 8, replace=False):
            stars = 3 + 2 * t * kind[item]  # 5 when tastes match, 1 otherwise
            rows.append({"user_id": user, "item_id": str(item), "type": "rating",
                         "value": float(stars)})
    sdk = RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
                  "pipeline": {"timeout_ms": 10_000},
                  "plugins": {"popularity": {}, "rating_mf": {"factors": 4, "reg": 0.1}}},
                 environ={})
    try:
        sdk.track_many(rows)
        sdk.fit()
        got = sdk.predict_ratings("u1", ["i1", "i2", "no-such-item"])  # u1 likes odd items
        assert got.plugin == "rating_mf"
        assert got.ratings["i1"] > 4 and got.ratings["i2"] < 2
        assert got.ratings["no-such-item"] is None
        assert sdk.predict_ratings("newcomer", ["i1"]).plugin is None  # nothing rated yet
        sdk.track_many([{"user_id": "newcomer", "item_id": "i3", "type": "rating",
                         "value": 5.0},
                        {"user_id": "newcomer", "item_id": "i4", "type": "rating",
                         "value": 1.0}])
        folded = sdk.predict_ratings("newcomer", ["i5", "i6"])  # fold-in, no retraining
        assert folded.plugin == "rating_mf"
        assert folded.ratings["i5"] > folded.ratings["i6"]
        body = create_app(sdk).test_client().get(
            "/api/v1/ratings?user_id=u1&item_id=i1&item_id=i2").get_json()
        assert body["ratings"] == {k: got.ratings[k] for k in ("i1", "i2")}
    finally:
        sdk.close()
