"""An A/B test run end to end over REST: simulated shoppers with planted tastes are served
by a weak and a strong configuration, click and buy what suits them, and the report
names the strong one the winner with the sample-ratio check passing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.data.synthetic import generate_shop

CONFIG: dict[str, Any] = {
    "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
    "plugins": {"popularity": {}},
    "experiments": {"home_ab": {
        "placements": ["home"],
        "variants": {
            "weak": {"share": 0.5},  # the top-level pipeline: popularity for everyone
            "strong": {"share": 0.5, "fallback": "popularity", "plugins": {
                "category_popularity": {"weight": 1.0}, "popularity": {"weight": 0.05}}},
        },
    }},
}
P_CLICK_LIKED, P_CLICK_OTHER, P_BUY = 0.25, 0.02, 0.4


def test_the_report_names_the_stronger_configuration(tmp_path: Path) -> None:
    shop = generate_shop(20_000, seed=3)
    config = {**CONFIG, "database_url": f"sqlite:///{tmp_path / 'shop.db'}"}
    rng = np.random.default_rng(11)
    leaf = dict(zip(shop.items["id"].astype(str), shop.items["category_id"].astype(str),
                    strict=True))
    price = dict(zip(shop.items["id"].astype(str), shop.items["price"].astype(float),
                     strict=True))
    liked: dict[str, set[str]] = {}
    for user, category in zip(shop.preferences["user_id"].astype(str),
                              shop.preferences["category_id"].astype(str), strict=True):
        liked.setdefault(user, set()).add(category)
    with RecSDK(config, environ={}) as sdk:
        shop.write_to(sdk)
        sdk.fit()
        client = create_app(sdk).test_client()
        shoppers = sorted(set(shop.events["user_id"].astype(str)))[:400]
        for user in shoppers:
            body = client.get(f"/api/v1/recommendations?user_id={user}&placement=home&k=10"
                              ).get_json()
            reactions = []
            for item in body["items"]:
                fits = leaf[item["item_id"]] in liked.get(user, set())
                if rng.random() < (P_CLICK_LIKED if fits else P_CLICK_OTHER):
                    reactions.append({"request_id": body["request_id"], "user_id": user,
                                      "item_id": item["item_id"], "type": "click"})
                    if rng.random() < P_BUY:
                        reactions.append({"request_id": body["request_id"], "user_id": user,
                                          "item_id": item["item_id"], "type": "purchase",
                                          "value": price[item["item_id"]]})
            if reactions:
                assert client.post("/api/v1/feedback", json=reactions).status_code == 201
        sdk.request_log.flush()
        report = client.get("/api/v1/admin/experiments/home_ab/report").get_json()
    arms = {v["variant"]: v for v in report["variants"]}
    assert arms["weak"]["counts"]["units"] + arms["strong"]["counts"]["units"] == 400
    assert not report["srm_mismatch"]
    assert report["winner"] == "strong"
    conversion = {c["metric"]: c for c in report["comparisons"]}["conversion_rate"]
    assert conversion["lift_abs"] > 0 and conversion["significant"]
