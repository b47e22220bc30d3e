"""The quick start's settings personalise: a returning user's list comes from the
collaborative plugin and differs from a new visitor's, which popularity serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

from recsdk import RecSDK
from recsdk.data.synthetic import generate_shop

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"


def test_the_demo_settings_personalise_for_returning_users(tmp_path: Path) -> None:
    config = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    config["database_url"] = f"sqlite:///{tmp_path}/shop.db"
    # a generous budget: a loaded CI machine must not turn the check into a timeout
    config["pipeline"]["timeout_ms"] = 10_000
    sdk = RecSDK(config, environ={})
    try:
        shop = generate_shop(8_000, seed=42)
        shop.write_to(sdk)
        sdk.fit()
        returning = str(shop.events["user_id"].astype(str).value_counts().index[0])
        mine = sdk.recommend(returning, k=10)
        stranger = sdk.recommend("someone-new", k=10)
        assert not mine.degraded and not stranger.degraded
        assert mine.item_ids != stranger.item_ids
        assert "als" in {i.source for i in mine.items}
        assert {i.source for i in stranger.items} <= {"popularity", "trending"}
        cart = sdk.recommend(returning, k=6, placement="cart",
                             context={"cart": [mine.item_ids[0]]})
        assert mine.item_ids[0] not in cart.item_ids and len(cart.items) == 6
    finally:
        sdk.close()
