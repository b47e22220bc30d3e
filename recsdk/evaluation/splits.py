"""Train/test splits of an interactions frame, deterministic for a seed, saved as files.

A split is written to disk so a comparison can be repeated, shared, or run by another
tool on exactly the same rows. Random splits draw from ``numpy.random.default_rng(seed)``
over the rows in file order, so the same file and seed give the same split anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import fail, read_interactions, write_table

SPLIT_FILE = "split.json"
METHODS = ("random", "temporal", "leave-last", "kfold")


@dataclass(frozen=True)
class Split:
    """Training and test rows, and how they were made (method, parameters, seed)."""

    train: pd.DataFrame
    test: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _check_frame(frame: pd.DataFrame, need_time: bool) -> None:
    if len(frame) == 0:
        raise ValidationFailed({"rows": ["no interactions to split"]},
                               frame.attrs.get("source", "interactions"))
    if not need_time:
        return
    if "timestamp" not in frame:
        raise ValidationFailed({"columns": ["a temporal split needs a 'timestamp' column; the "
                                            f"header names {list(frame.columns)}"]},
                               frame.attrs.get("source", "interactions"))
    missing = np.flatnonzero(frame["timestamp"].isna().to_numpy())
    if len(missing):
        raise fail(frame, "interactions", "timestamp", missing, "empty timestamp")


def _check_ratio(test_ratio: float) -> None:
    if not 0 < test_ratio < 1:
        raise ValueError(f"test_ratio must be between 0 and 1 (exclusive), got {test_ratio}")


def _by_mask(frame: pd.DataFrame, test: np.ndarray, meta: dict[str, Any]) -> Split:
    return Split(frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True), meta)


def _position_in_user(users: pd.Series, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based position within its user by ``order_key``, and the user's size."""
    ordered = pd.DataFrame({"user": users.to_numpy(), "key": order_key,
                            "row": np.arange(len(users))})
    ordered = ordered.sort_values(["user", "key", "row"], kind="stable")
    position = np.empty(len(users), dtype=np.int64)
    position[ordered["row"].to_numpy()] = ordered.groupby("user", sort=False).cumcount()
    size = users.map(users.value_counts()).to_numpy(dtype=np.int64)
    return position, size


def random_split(frame: pd.DataFrame, test_ratio: float = 0.2, seed: int = 42) -> Split:
    """Per user, a random ``test_ratio`` share of their interactions is held out.

    A user holds out floor(ratio x n) rows, at least one when they have two or more
    (RecBole's rule), so every user with some history is both trained and tested.
    """
    _check_ratio(test_ratio)
    _check_frame(frame, need_time=False)
    keys = np.random.default_rng(seed).random(len(frame))
    position, size = _position_in_user(frame["user"], keys)
    n_test = np.floor(test_ratio * size + 1e-9).astype(np.int64)
    n_test = np.where((n_test == 0) & (size >= 2), 1, n_test)
    return _by_mask(frame, position >= size - n_test,
                    {"method": "random", "test_ratio": test_ratio, "seed": seed})


def temporal_split(frame: pd.DataFrame, test_ratio: float = 0.2) -> Split:
    """The latest ``test_ratio`` share of all interactions (one global cut) is held out.

    Rows are ordered by timestamp, equal timestamps in file order; nothing after the
    cut is trained on, as when a model trained today is used tomorrow.
    """
    _check_ratio(test_ratio)
    _check_frame(frame, need_time=True)
    order = np.argsort(frame["timestamp"].to_numpy(float), kind="stable")
    n_train = len(frame) - int(np.floor(test_ratio * len(frame) + 1e-9))
    test = np.ones(len(frame), dtype=bool)
    test[order[:n_train]] = False
    return _by_mask(frame, test, {"method": "temporal", "test_ratio": test_ratio})


def leave_last_split(frame: pd.DataFrame, n: int = 1) -> Split:
    """Each user's last ``n`` interactions (by timestamp) are held out.

    Users with ``n`` or fewer interactions stay in training only, so that no test user
    arrives without history.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _check_frame(frame, need_time=True)
    position, size = _position_in_user(frame["user"], frame["timestamp"].to_numpy(float))
    return _by_mask(frame, (size > n) & (position >= size - n),
                    {"method": "leave-last", "n": n})


def kfold_splits(frame: pd.DataFrame, folds: int = 5, seed: int = 42) -> list[Split]:
    """``folds`` splits whose test sets partition the rows; each user spread over folds.

    Each user's rows are shuffled and dealt to folds in turn from a random first fold,
    so every fold holds about 1/folds of every user's interactions.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    _check_frame(frame, need_time=False)
    rng = np.random.default_rng(seed)
    position, _ = _position_in_user(frame["user"], rng.random(len(frame)))
    users, user_codes = np.unique(frame["user"].to_numpy(dtype=str), return_inverse=True)
    offset = rng.integers(0, folds, size=len(users))
    fold = (position + offset[user_codes]) % folds
    return [_by_mask(frame, fold == f, {"method": "kfold", "folds": folds, "fold": f + 1,
                                        "seed": seed})
            for f in range(folds)]


def make_splits(frame: pd.DataFrame, method: str, *, test_ratio: float = 0.2, n: int = 1,
                folds: int = 5, seed: int = 42) -> list[Split]:
    """The split(s) named by ``method`` (one of :data:`METHODS`)."""
    if method == "random":
        return [random_split(frame, test_ratio, seed)]
    if method == "temporal":
        return [temporal_split(frame, test_ratio)]
    if method == "leave-last":
        return [leave_last_split(frame, n)]
    if method == "kfold":
        return kfold_splits(frame, folds, seed)
    raise ValueError(f"unknown split method {method!r}; choose one of {', '.join(METHODS)}")


def save_split(split: Split, directory: str | Path) -> Path:
    """Write ``train.tsv``, ``test.tsv`` and ``split.json`` (how it was made) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_table(split.train, directory / "train.tsv")
    write_table(split.test, directory / "test.tsv")
    meta = {**split.meta, "train_rows": len(split.train), "test_rows": len(split.test)}
    (directory / SPLIT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return directory


def save_splits(splits: list[Split], directory: str | Path) -> list[Path]:
    """One split into ``directory``; several (folds) into ``directory/fold-1`` and so on."""
    if len(splits) == 1:
        return [save_split(splits[0], directory)]
    return [save_split(s, Path(directory) / f"fold-{i}") for i, s in enumerate(splits, 1)]


def load_split(directory: str | Path) -> Split:
    """Read a split written by :func:`save_split`."""
    directory = Path(directory)
    meta_path = directory / SPLIT_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return Split(read_interactions(directory / "train.tsv", "train"),
                 read_interactions(directory / "test.tsv", "test"), meta)


def load_splits(directory: str | Path) -> list[Split]:
    """The folds under ``directory`` (``fold-1``...), or the single split in it."""
    directory = Path(directory)
    folds = sorted(directory.glob("fold-*"), key=lambda p: int(p.name.split("-")[1]))
    if folds:
        return [load_split(p) for p in folds]
    if not (directory / "train.tsv").is_file():
        raise FileNotFoundError(f"{directory}: no train.tsv and no fold-N folders")
    return [load_split(directory)]
