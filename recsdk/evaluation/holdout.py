"""A model run's offline metrics: its configuration scored on the latest events.

With ``[models] offline_eval = true``, :meth:`recsdk.RecSDK.fit` first trains the
configured pipeline on all but the latest ``offline_eval_test_ratio`` of the stored
events (one global time cut, as a model trained today serves tomorrow), serves every
held-out user (at most ``offline_eval_max_users``, a seeded sample) through
:func:`recsdk.evaluation.served.evaluate_served`, a throwaway SQLite SDK with the same
catalogue, and records the metrics at ``offline_eval_k`` in the run's ``stats["offline"]``.
The run itself is then trained on everything, so the figures describe the configuration
and data it was trained with, measured one step back in time. It costs one more training.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from recsdk.config import Settings
from recsdk.data.frames import ShopData
from recsdk.dataset import InteractionDataset
from recsdk.evaluation.catalogue import EvaluationCatalogue
from recsdk.evaluation.served import evaluate_served
from recsdk.evaluation.splits import temporal_split

#: Fewer events than this: no holdout is measured (it would say nothing).
MIN_EVENTS = 100


def interactions(dataset: InteractionDataset) -> pd.DataFrame:
    """A training dataset as the evaluation's ``user, item, timestamp, type, rating`` frame.

    Id columns are gathered from the vocabularies (``ids[codes]``): each row points at
    the vocabulary's string, so the frame costs 8 bytes per id cell, not a string per
    event. Rows keep the dataset's order (time, then storage order).
    """
    inter = dataset.interactions
    return pd.DataFrame({"user": dataset.user_ids[inter["user"].to_numpy()],
                         "item": dataset.item_ids[inter["item"].to_numpy()],
                         "timestamp": inter["timestamp"].to_numpy(dtype=float),
                         "type": inter["type"].to_numpy(dtype=object),
                         "rating": inter["value"].to_numpy(dtype=float)})


def store_catalogue(store: Any) -> EvaluationCatalogue | None:
    """The store's categories and items, for the throwaway SDK and the metrics."""
    items = store.items_frame()
    if items.empty:
        return None
    categories = pd.DataFrame({"item": items["id"].astype(str),
                               "categories": [[c] if isinstance(c, str) else []
                                              for c in items["category_id"]]})
    return EvaluationCatalogue(ShopData(categories=store.categories_frame(), items=items),
                               categories)


def holdout_metrics(settings: Settings, store: Any,
                    dataset: InteractionDataset) -> dict[str, Any]:
    """The configuration's metrics on the latest events (see the module), JSON-able;
    ``{"skipped": why}`` when there is too little to measure."""
    models = settings.models
    started = time.perf_counter()
    frame = interactions(dataset)
    if len(frame) < MIN_EVENTS:
        return {"skipped": f"{len(frame)} events: at least {MIN_EVENTS} are needed"}
    split = temporal_split(frame, models["offline_eval_test_ratio"])
    test_users = np.array(sorted(set(split.test["user"]) & set(split.train["user"])),
                          dtype=object)
    if test_users.size == 0:
        return {"skipped": "no user of the latest events has earlier events"}
    rng = np.random.default_rng(settings.seed)
    if test_users.size > models["offline_eval_max_users"]:
        test_users = rng.choice(test_users, models["offline_eval_max_users"], replace=False)
    test = split.test[split.test["user"].isin(set(test_users))]
    k = models["offline_eval_k"]
    raw = dict(settings.raw)
    raw["models"] = {**raw.get("models", {}), "offline_eval": False}
    result = evaluate_served(raw, split.train, test, k=k, catalogue=store_catalogue(store),
                             environ={}).result
    return {"k": k, "test_ratio": models["offline_eval_test_ratio"],
            "train_events": len(split.train), "test_events": len(test),
            "users": int(test_users.size), "metrics": dict(result.main),
            "seconds": round(time.perf_counter() - started, 3)}
