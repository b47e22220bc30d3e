"""Splits: the rows they hold out, determinism for a seed, files, and bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import check_interactions
from recsdk.evaluation.splits import (
    kfold_splits,
    leave_last_split,
    load_splits,
    make_splits,
    random_split,
    save_splits,
    temporal_split,
)


def rows(frame: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, frame[["user", "item"]].to_numpy()))


def assert_partition(frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    assert len(train) + len(test) == len(frame)
    assert rows(train) | rows(test) == rows(frame)
    assert not rows(train) & rows(test)


def test_random_split_holds_out_floor_ratio_per_user_at_least_one(interactions):
    split = random_split(interactions, 0.2, seed=3)
    assert_partition(interactions, split.train, split.test)
    sizes = interactions.groupby("user").size()
    held = split.test.groupby("user").size().reindex(sizes.index, fill_value=0)
    expected = np.maximum(np.floor(0.2 * sizes), (sizes >= 2).astype(int))
    assert (held == expected).all()
    assert split.meta == {"method": "random", "test_ratio": 0.2, "seed": 3}


def test_random_split_keeps_a_single_interaction_in_training():
    frame = check_interactions(pd.DataFrame({"user": ["a", "b", "b"], "item": ["x", "x", "y"]}))
    split = random_split(frame, 0.2, seed=0)
    assert "a" in set(split.train["user"]) and "a" not in set(split.test["user"])
    assert len(split.test) == 1


def test_random_split_is_deterministic_for_a_seed(interactions):
    first, again = random_split(interactions, 0.3, 7), random_split(interactions, 0.3, 7)
    other = random_split(interactions, 0.3, 8)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert rows(first.test) != rows(other.test)


def test_temporal_split_holds_out_the_latest_share(interactions):
    split = temporal_split(interactions, 0.25)
    assert_partition(interactions, split.train, split.test)
    assert len(split.test) == int(np.floor(0.25 * len(interactions)))
    assert split.train["timestamp"].max() <= split.test["timestamp"].min()


def test_leave_last_split_holds_out_each_users_latest_rows(interactions):
    split = leave_last_split(interactions, n=2)
    assert_partition(interactions, split.train, split.test)
    for user, group in interactions.groupby("user"):
        held = split.test[split.test["user"] == user]
        if len(group) <= 2:
            assert held.empty
            continue
        latest = group.sort_values("timestamp", kind="stable").tail(2)
        assert rows(held) == rows(latest)


def test_leave_last_split_breaks_timestamp_ties_by_file_order():
    frame = check_interactions(pd.DataFrame({"user": ["u"] * 3, "item": ["a", "b", "c"],
                                             "timestamp": [5, 5, 5]}))
    assert leave_last_split(frame, 1).test["item"].tolist() == ["c"]


def test_kfold_test_sets_partition_the_rows_and_spread_each_user(interactions):
    folds = kfold_splits(interactions, folds=4, seed=1)
    assert len(folds) == 4
    tests = [rows(f.test) for f in folds]
    assert set().union(*tests) == rows(interactions)
    assert sum(len(t) for t in tests) == len(interactions)
    for fold in folds:
        assert_partition(interactions, fold.train, fold.test)
    per_user = pd.DataFrame([f.test.groupby("user").size() for f in folds]).fillna(0)
    assert ((per_user.max() - per_user.min()) <= 1).all()  # dealt in turn
    again = kfold_splits(interactions, folds=4, seed=1)
    assert [rows(f.test) for f in again] == tests


def test_splits_round_trip_through_files(tmp_path, interactions):
    split = random_split(interactions, 0.2, seed=5)
    (path,) = save_splits([split], tmp_path / "split")
    assert sorted(p.name for p in path.iterdir()) == ["split.json", "test.tsv", "train.tsv"]
    (loaded,) = load_splits(path)
    pd.testing.assert_frame_equal(loaded.test, split.test, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.train, split.train, check_dtype=False)
    meta = json.loads((path / "split.json").read_text())
    assert meta["seed"] == 5 and meta["test_rows"] == len(split.test)


def test_folds_are_written_to_numbered_folders(tmp_path, interactions):
    folds = make_splits(interactions, "kfold", folds=3, seed=2)
    paths = save_splits(folds, tmp_path / "cv")
    assert [p.name for p in paths] == ["fold-1", "fold-2", "fold-3"]
    loaded = load_splits(tmp_path / "cv")
    assert [rows(f.test) for f in loaded] == [rows(f.test) for f in folds]
    assert [f.meta["fold"] for f in loaded] == [1, 2, 3]


def test_loading_a_folder_without_a_split_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no train\.tsv"):
        load_splits(tmp_path)


@pytest.mark.parametrize(("call", "message"), [
    (lambda f: random_split(f, 0.0), "test_ratio must be between 0 and 1"),
    (lambda f: temporal_split(f, 1.0), "test_ratio must be between 0 and 1"),
    (lambda f: leave_last_split(f, 0), "n must be at least 1"),
    (lambda f: kfold_splits(f, 1), "folds must be at least 2"),
    (lambda f: make_splits(f, "shuffle"), "unknown split method 'shuffle'"),
])
def test_bad_split_arguments_are_named(interactions, call, message):
    with pytest.raises(ValueError, match=message):
        call(interactions)


def test_temporal_splits_need_timestamps(interactions):
    without = interactions.drop(columns="timestamp")
    with pytest.raises(ValidationFailed, match="needs a 'timestamp' column"):
        temporal_split(without)
    gap = interactions.copy()
    gap.loc[3, "timestamp"] = np.nan
    with pytest.raises(ValidationFailed, match="row 4: empty timestamp"):
        leave_last_split(gap)


def test_an_empty_frame_cannot_be_split():
    empty = check_interactions(pd.DataFrame({"user": [], "item": []}), allow_empty=True)
    with pytest.raises(ValidationFailed, match="no interactions to split"):
        random_split(empty)
