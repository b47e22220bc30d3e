"""A tiny planted-structure shop, and a real artifact store, for the factorisation tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from recsdk_plugins.factorization import ALS, BPR, LMF

from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.types import PluginContext

WEIGHTS = {"view": 1.0, "purchase": 4.0, "return": -4.0}
DAY = 86400.0
#: Two taste groups: users "a*" choose among items 0-9, users "b*" among items 10-19.
N_USERS, N_ITEMS, PER_USER = 30, 20, 6
#: small, fast settings that still learn the planted groups
FAST = {
    "als": {"factors": 4, "iterations": 10, "regularization": 1.0, "alpha": 5.0},
    "bpr": {"solver": "implicit", "factors": 4, "iterations": 100, "learning_rate": 0.05},
    "bpr_adam": {"solver": "adam", "factors": 4, "iterations": 40, "learning_rate": 0.05,
                 "batch_size": 16, "regularization": 0.01},
    "lmf": {"factors": 4, "iterations": 30, "neg_prop": 3, "regularization": 0.6,
            "learning_rate": 1.0},
}
CLASSES = {"als": ALS, "bpr": BPR, "bpr_adam": BPR, "lmf": LMF}


def planted_events() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for u in range(N_USERS):
        group = u % 2
        user = f"{'ab'[group]}{u}"
        for item in rng.choice(10, PER_USER, replace=False) + 10 * group:
            rows.append((user, f"i{item}", "view", float(rng.integers(0, 10)) * DAY))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def planted_dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(planted_events(), event_weights=WEIGHTS)


def context(seed: int = 3) -> PluginContext:
    settings = Settings(seed=seed, device="cpu", event_weights=WEIGHTS)
    return PluginContext(settings=settings, seed=seed, device_setting="cpu")


def fitted(name: str, dataset: InteractionDataset | None = None, **params: Any) -> Any:
    plugin = CLASSES[name].from_config({**FAST[name], "num_threads": 1, **params}, name)
    ctx = context()
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset or planted_dataset(), context=ctx)
    return plugin


