"""One frame layout for a shop's data, whatever file or generator it came from.

Loaders, the synthetic generator and cleaning all produce a :class:`ShopData`, so one
method writes any of them into a database: catalogue first (categories, items), then
users, then events in chunks through the bulk path of :class:`recsdk.storage.store.Store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from marshmallow import Schema

from recsdk.data.report import LoadReport
from recsdk.data.validation import EVENT_COLUMNS, TIMESTAMP_DTYPE, require_valid_events
from recsdk.errors import ValidationFailed
from recsdk.schemas import CategorySchema, ItemSchema, UserSchema, load_many
from recsdk.storage.store import Store

CATEGORY_COLUMNS = ("id", "name", "parent_id")
ITEM_COLUMNS = ("id", "title", "description", "category_id", "tags", "price",
                "original_price", "stock", "active", "image_url", "attributes")
USER_COLUMNS = ("id", "attributes")
#: Columns the bulk path stores (``event_id`` and ``context`` rows go through add_events).
BULK_COLUMNS = ["user_id", "session_id", "item_id", "type", "timestamp", "value"]
#: Catalogue rows validated and upserted per call.
CATALOG_CHUNK = 10_000


class HasStore(Protocol):
    """A :class:`recsdk.RecSDK` (or anything with a ``store``)."""

    store: Store


def empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame["timestamp"] = pd.Series(dtype=TIMESTAMP_DTYPE)
    frame["value"] = pd.Series(dtype=float)
    return frame


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class WriteCounts:
    """Rows written per table; ``duplicate_events`` had an already stored event_id."""

    categories: int = 0
    items: int = 0
    users: int = 0
    events: int = 0
    duplicate_events: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ShopData:
    """Categories, items, users and events of a shop as pandas frames.

    * categories: ``id, name, parent_id``
    * items: ``id, title, description, category_id, tags (list[str]), price,
      original_price, stock, active, image_url, attributes (dict)``
    * users: ``id, attributes (dict: age, gender, occupation, ...)``
    * events: ``user_id, session_id, item_id, type, timestamp (UTC), value, event_id``

    ``report`` says, per table, what loading skipped or changed.
    """

    categories: pd.DataFrame = field(default_factory=lambda: _empty(CATEGORY_COLUMNS))
    items: pd.DataFrame = field(default_factory=lambda: _empty(ITEM_COLUMNS))
    users: pd.DataFrame = field(default_factory=lambda: _empty(USER_COLUMNS))
    events: pd.DataFrame = field(default_factory=empty_events)
    report: LoadReport = field(default_factory=LoadReport)

    @property
    def n_events(self) -> int:
        return len(self.events)

    def iter_events(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        """The events in chunks of at most ``chunk_size`` rows."""
        for start in range(0, len(self.events), chunk_size):
            yield self.events.iloc[start : start + chunk_size]

    def write_to(self, target: Store | HasStore, *, chunk_size: int = 100_000,
                 validate: bool = True, progress: bool = False) -> WriteCounts:
        """Write everything into a RecSDK's (or a Store's) database; return counts.

        With ``validate`` (the default) catalogue and users are validated by recsdk's
        marshmallow schemas and events column by column with the same rules; a bad
        row stops the write with the row named. ``validate=False`` skips both, for
        frames that the loaders (catalogue checks) and :func:`clean_events` produced
        or that the synthetic generator made. Items whose category is neither in
        ``categories`` nor stored are refused before anything is written. Events are
        bulk-loaded chunk by chunk, each chunk in one transaction. Events with an
        ``event_id`` or a ``context`` go through ``Store.add_events``, which skips
        ids already stored. Plugins' ``recsdk_collect_event`` is not called for bulk
        history: train (``fit``) after an import.
        """
        sdk = None if isinstance(target, Store) else target
        store = target if isinstance(target, Store) else target.store
        _check_item_categories(self.items, self.categories, store)
        counts = WriteCounts()
        counts.categories = _upsert(store.upsert_categories,
                                    CategorySchema() if validate else None,
                                    self.categories, CATEGORY_COLUMNS, "categories",
                                    chunk=None)
        counts.items = _upsert(store.upsert_items, ItemSchema() if validate else None,
                               self.items, ITEM_COLUMNS, "items")
        counts.users = _upsert(store.upsert_users, UserSchema() if validate else None,
                               self.users, USER_COLUMNS, "users")
        if sdk is not None and hasattr(sdk, "refresh_catalog"):
            sdk.refresh_catalog()
        chunks: Any = self.iter_events(chunk_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, total=-(-self.n_events // chunk_size), unit="chunk",
                          desc="events")
        touched_users: set[str] = set()
        touched_sessions: set[str] = set()
        for chunk in chunks:
            stored, duplicates = write_events(store, chunk, validate=validate)
            counts.events += stored
            counts.duplicate_events += duplicates
            if sdk is not None:
                touched_users.update(pd.unique(chunk["user_id"].dropna().astype(str)))
                if "session_id" in chunk.columns:
                    touched_sessions.update(
                        pd.unique(chunk["session_id"].dropna().astype(str)))
        if sdk is not None and hasattr(sdk, "forget_recent"):
            # the request path must read these histories again, now with the imported events
            sdk.forget_recent(touched_users, touched_sessions)
        return counts


def _check_item_categories(items: pd.DataFrame, categories: pd.DataFrame,
                           store: Store) -> None:
    """Refuse items whose category is neither in ``categories`` nor stored, before
    anything is written (Store checks it too, but per chunk)."""
    if items.empty or "category_id" not in items.columns:
        return
    wanted = set(items["category_id"].dropna().astype(str))
    if not categories.empty:
        wanted -= set(categories["id"].astype(str))
    if not wanted:
        return
    stored = set(store.categories_frame()["id"].astype(str))
    unknown = wanted - stored
    if unknown:
        bad = items["category_id"].astype(object).isin(unknown).to_numpy()
        rows = np.flatnonzero(bad)
        messages: dict[Any, Any] = {int(r): {"category_id": [
            f"Unknown category {items['category_id'].iat[r]!r}; import the categories "
            "first."]} for r in rows[:20]}
        if len(rows) > 20:
            messages["_more"] = [f"{len(rows) - 20} more items with unknown categories"]
        raise ValidationFailed(messages, "items")


def write_events(store: Store, frame: pd.DataFrame, *, validate: bool = True
                 ) -> tuple[int, int]:
    """Store one chunk of events; return (stored, skipped as duplicate event_id)."""
    if validate:
        frame = require_valid_events(frame)
    if frame.empty:
        return 0, 0
    keyed = np.zeros(len(frame), dtype=bool)
    if "event_id" in frame.columns:
        keyed |= frame["event_id"].notna().to_numpy()
    if "context" in frame.columns:
        keyed |= frame["context"].notna().to_numpy()
    stored = 0
    duplicates = 0
    plain = frame.loc[~keyed, [c for c in BULK_COLUMNS if c in frame.columns]]
    if len(plain):
        stored += store.copy_events(plain)
    if keyed.any():
        report = store.add_events(_event_records(frame.loc[keyed]))
        stored += report.stored
        duplicates += report.duplicates
    return stored, duplicates


def _event_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Python rows for ``Store.add_events`` (aware datetimes, None for missing)."""
    columns = [c for c in (*EVENT_COLUMNS, "context") if c in frame.columns]
    out = frame[columns].astype(object)
    out = out.where(frame[columns].notna(), None)
    records = out.to_dict("records")
    for rec in records:
        ts = rec.get("timestamp")
        if isinstance(ts, pd.Timestamp):
            rec["timestamp"] = ts.to_pydatetime()
    return records


def frame_records(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows as plain Python dicts for the schemas; missing cells are left out, so an
    upsert keeps what the database has (or the column default for a new row)."""
    present = [c for c in columns if c in frame.columns]
    records = frame[present].astype(object).to_dict("records")
    out = []
    for rec in records:
        row: dict[str, Any] = {}
        for key, value in rec.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if value is pd.NA or value is pd.NaT:
                continue
            row[key] = value.item() if isinstance(value, np.generic) else value
        out.append(row)
    return out


def _upsert(write: Any, schema: Schema | None, frame: pd.DataFrame,
            columns: tuple[str, ...], what: str, chunk: int | None = CATALOG_CHUNK) -> int:
    """Validate ``frame`` with ``schema`` (unless None) and upsert it, in chunks.

    Categories go in one call so that parents and children meet in one batch.
    """
    if frame.empty:
        return 0
    records = frame_records(frame, columns)
    step = chunk or len(records)
    total = 0
    for start in range(0, len(records), step):
        part = records[start : start + step]
        if schema is None:
            total += write(part)
            continue
        try:
            rows = load_many(schema, part, what)
        except ValidationFailed as exc:
            if not isinstance(exc.messages, dict) or not start:
                raise
            shifted = {(k + start if isinstance(k, int) else k): v
                       for k, v in exc.messages.items()}
            raise ValidationFailed(shifted, what) from exc
        total += write(rows)
    return total
