"""``[models] offline_eval``: each run records its configuration's metrics on the
latest events, measured before it trains on everything; reproducible, skipped when
there is too little data, refused when misconfigured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recsdk import RecSDK
from recsdk.config import load_settings
from recsdk.data.synthetic import generate_shop
from recsdk.errors import ConfigurationError


def config(tmp_path: Path, name: str, **models: Any) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{tmp_path / name}", "seed": 5,
            "pipeline": {"timeout_ms": 10_000},
            "plugins": {"popularity": {}, "category_popularity": {}},
            "models": {"offline_eval": True, "offline_eval_max_users": 40, **models}}


def test_each_run_records_its_holdout_metrics(tmp_path: Path) -> None:
    shop = generate_shop(10_000, seed=1)
    runs = []
    for name in ("a.db", "b.db"):
        with RecSDK(config(tmp_path, name), environ={}) as sdk:
            shop.write_to(sdk)
            report = sdk.fit()
            runs.append(sdk.registry.get(report.run_id).stats)
    offline = runs[0]["offline"]
    assert offline["k"] == 10 and offline["test_ratio"] == 0.1
    assert offline["users"] == 40  # a sample of the 68
    assert offline["train_events"] > 9 * offline["test_events"] > 0
    ndcg = offline["metrics"]["ndcg"]
    assert 0 < ndcg < 1 and 0 < offline["metrics"]["recall"] <= 1
    # same data, same seed: the same sample of users and the same figures
    assert runs[1]["offline"]["metrics"] == offline["metrics"]
    assert runs[0]["interactions"] == runs[1]["interactions"]


def test_off_by_default_and_skipped_on_too_little_data(tmp_path: Path) -> None:
    cfg = config(tmp_path, "c.db")
    cfg["models"] = {}
    with RecSDK(cfg, environ={}) as sdk:
        generate_shop(2_000, seed=2).write_to(sdk)
        assert "offline" not in sdk.registry.get(sdk.fit().run_id).stats
    with RecSDK(config(tmp_path, "d.db"), environ={}) as sdk:
        sdk.track_many([{"user_id": f"u{n}", "item_id": f"i{n % 3}", "type": "view"}
                        for n in range(20)])
        stats = sdk.registry.get(sdk.fit().run_id).stats
    assert stats["offline"] == {"skipped": "20 events: at least 100 are needed"}


@pytest.mark.parametrize(("key", "value"), [("offline_eval_test_ratio", 0.9),
                                            ("offline_eval_k", 0),
                                            ("offline_eval_max_users", 0),
                                            ("offline_eval", "sometimes")])
def test_bad_settings_are_named(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"models.{key}"):
        load_settings({"models": {key: value}}, environ={})


def test_store_events_become_evaluation_rows_in_unix_seconds() -> None:
    import pandas as pd

    from recsdk.dataset import InteractionDataset
    from recsdk.evaluation.holdout import interactions

    events = pd.DataFrame({"user_id": ["u2", "u1"], "item_id": ["i1", "i2"],
                           "type": ["view", "purchase"],
                           "timestamp": pd.to_datetime(["2024-01-01T00:00:00Z",
                                                        "2024-01-01T00:00:10Z"]),
                           "value": [None, 9.5]})
    frame = interactions(InteractionDataset.from_frame(events))
    row = frame.iloc[1]
    assert (row["user"], row["item"], row["type"], row["rating"]) == ("u1", "i2", "purchase",
                                                                       9.5)
    assert row["timestamp"] == 1_704_067_210.0
    assert frame["user"].tolist() == ["u2", "u1"]  # the dataset's (time) order
