"""Streaming training data: ``Store.iter_event_columns`` chunks and
``InteractionDataset.from_event_chunks`` give the dataset that ``from_frame`` builds
from ``events_frame``, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.catalog import Catalog
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.dataset import InteractionDataset, session_numbers
from recsdk.errors import ValidationFailed
from recsdk.storage.store import Store

WEIGHTS = {"view": 1.0, "click": 2.0, "purchase": 5.0, "return": -5.0, "rating": 0.5}


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(6_000, seed=5, n_users=90, n_items=400)


def odd_events() -> pd.DataFrame:
    """Ids a CSV reader would take for missing values or numbers, a missing session
    and value, and events that tie on time (row id then decides their order)."""
    stamp = pd.Timestamp("2024-02-01T10:00:00.123456", tz="UTC")
    return pd.DataFrame({
        "user_id": ["NA", "null", "007", "NA", "u, \"quoted\""],
        "session_id": [None, "NaN", "s1", None, ""],
        "item_id": ["None", "1e3", "NA", "1e3", "None"],
        "type": ["view", "return", "purchase", "view", "custom"],
        "timestamp": [stamp, stamp, stamp - pd.Timedelta(days=400), stamp, stamp],
        "value": [np.nan, 2.5, np.nan, -1.25, 3.0],
    })


def fill(store: Store, shop: SyntheticShop) -> Catalog:
    shop.write_to(store, validate=False, chunk_size=1_000)
    store.copy_events(odd_events())
    return Catalog.from_frames(store.items_frame(), store.categories_frame())


def assert_same_dataset(store: Store, catalog: Catalog, chunk_rows: int) -> None:
    through = store.max_event_id() - 1  # the last stored event is past the cut-off
    want = InteractionDataset.from_frame(store.events_frame(through_id=through), catalog,
                                         WEIGHTS)
    got = InteractionDataset.from_event_chunks(
        store.iter_event_columns(through_id=through, chunk_rows=chunk_rows), catalog,
        WEIGHTS)
    assert got.user_ids.tolist() == want.user_ids.tolist()
    assert got.item_ids.tolist() == want.item_ids.tolist()
    assert len(got.interactions) == store.count_events() - 1
    # catalogue items nobody touched are in the vocabulary all the same
    assert got.n_items > got.interactions["item"].nunique()
    pd.testing.assert_frame_equal(got.interactions, want.interactions)
    assert got.interactions["user"].dtype == np.int32
    assert isinstance(got.interactions["type"].dtype, pd.CategoricalDtype)
    assert (got.matrix != want.matrix).nnz == 0
    assert got.matrix.dtype == want.matrix.dtype == np.float32
    assert got.fingerprint() == want.fingerprint()


def check_both_paths(store: Store, shop: SyntheticShop) -> None:
    """Fill ``store`` and compare the two datasets with small and default pages."""
    try:
        catalog = fill(store, shop)
        for chunk_rows in (997, 250_000):
            assert_same_dataset(store, catalog, chunk_rows)
    finally:
        store.close()


def test_sqlite_chunks_build_the_frame_dataset(tmp_path, shop):
    store = Store(f"sqlite:///{tmp_path / 'shop.db'}")
    store.create_all()
    check_both_paths(store, shop)


@pytest.mark.postgres
def test_postgresql_chunks_build_the_frame_dataset(postgres_db, shop):
    store = Store(postgres_db)
    store.upgrade()
    check_both_paths(store, shop)


def test_chunks_are_keyset_pages_up_to_the_cut_off(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'few.db'}")
    store.create_all()
    try:
        store.copy_events(odd_events())
        chunks = list(store.iter_event_columns(through_id=4, chunk_rows=3))
        assert [c["id"].tolist() for c in chunks] == [[1, 2, 3], [4]]
        first = chunks[0]
        assert first["user_id"].tolist() == ["NA", "null", "007"]
        assert first["session_id"].isna().tolist() == [True, False, False]
        assert first["micros"].tolist()[0] == 1706781600123456
        assert np.isnan(first["value"].iloc[0])
        assert list(store.iter_event_columns(through_id=0)) == []
        with pytest.raises(ValueError, match="chunk_rows"):
            next(store.iter_event_columns(chunk_rows=0))
    finally:
        store.close()


def test_chunks_without_a_column_are_refused():
    chunk = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "type": ["view"]})
    with pytest.raises(ValidationFailed, match="micros"):
        InteractionDataset.from_event_chunks([chunk])


def test_no_chunks_give_an_empty_dataset_with_the_catalogue_items():
    dataset = InteractionDataset.from_event_chunks(iter(()))
    assert dataset.n_users == 0
    assert dataset.matrix.shape == (0, 0)
    assert len(dataset.interactions) == 0


def test_sessions_are_numbered_in_order_of_first_appearance_without_their_ids():
    ids = np.array(["b", None, "a", "b", "", np.nan, "a", "c", 7, "7"], dtype=object)
    numbers = session_numbers(ids)
    assert numbers.dtype == np.int32
    # missing and empty ids have no session; 7 and "7" are the same id as text
    assert numbers.tolist() == [0, -1, 1, 0, -1, -1, 1, 2, 3, 3]
    assert session_numbers(np.array([], dtype=object)).tolist() == []
    assert session_numbers(np.array([None, ""], dtype=object)).tolist() == [-1, -1]


def test_chunked_sessions_are_one_session_across_chunks():
    """A session whose events arrive in different chunks (and out of time order) gets
    one number, the number the whole frame gives it."""
    stamps = pd.to_datetime([5, 1, 3, 2, 4], unit="s", utc=True)
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u2", "u1"],
                          "session_id": ["x", "y", "x", None, "z"],
                          "item_id": ["i1", "i2", "i3", "i1", "i2"], "type": "view",
                          "timestamp": stamps, "value": np.nan})
    chunks = [frame.iloc[k:k + 2].assign(micros=lambda f: f["timestamp"].astype("int64")
                                         // 1_000) for k in range(0, 5, 2)]
    got = InteractionDataset.from_event_chunks(chunks)
    want = InteractionDataset.from_frame(frame.sort_values("timestamp"))
    # time order: y (t1), none (t2), x (t3, t5), z (t4)
    assert got.interactions["session"].tolist() == [0, -1, 1, 2, 1]
    assert want.interactions["session"].tolist() == [0, -1, 1, 2, 1]


def test_the_fingerprint_hashed_in_slices_is_the_whole_columns_hash(monkeypatch, shop):
    import hashlib

    import recsdk.dataset

    dataset = InteractionDataset.from_frame(shop.events.iloc[:500], event_weights=WEIGHTS)
    digest = hashlib.sha256()
    for ids in (dataset.user_ids, dataset.item_ids):
        digest.update("\x1f".join(map(str, ids)).encode() + b"\x1e")
    inter = dataset.interactions
    for column, dtype in (("user", np.int64), ("item", np.int64),
                          ("timestamp", np.float64), ("weight", np.float32)):
        digest.update(inter[column].to_numpy(dtype).tobytes())
    digest.update("\x1f".join(map(str, inter["type"])).encode())
    monkeypatch.setattr(recsdk.dataset, "FINGERPRINT_ROWS", 7)
    assert dataset.fingerprint() == digest.hexdigest()
    changed = InteractionDataset.from_frame(shop.events.iloc[1:501], event_weights=WEIGHTS)
    assert changed.fingerprint() != digest.hexdigest()
