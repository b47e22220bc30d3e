"""The storage facade: what recsdk reads and writes, on SQLite or PostgreSQL.

Every write is one transaction: either a whole validated batch is stored or none of
it is, and a method returns only after the commit, so accepted data is durable.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, exists, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import sessionmaker

from recsdk.errors import ConfigurationError, ValidationFailed
from recsdk.rules import category_problems
from recsdk.storage import bulk, models, partitions
from recsdk.storage.database import make_engine
from recsdk.storage.retry import retry_conflicts
from recsdk.types import Event

_T = TypeVar("_T")
#: Columns of :meth:`Store.iter_event_columns`'s chunks.
EVENT_COLUMN_CHUNK = ("id", "user_id", "session_id", "item_id", "type", "micros", "value")
#: Rows per chunk of :meth:`Store.iter_event_columns`: a few MiB of arrays per column.
EVENT_CHUNK_ROWS = 250_000


@dataclass
class InsertReport:
    """What an ingestion call stored; ``rows`` are the stored events as tuples."""

    received: int
    stored: int
    duplicates: int
    rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)

    @functools.cached_property
    def events(self) -> list[Event]:
        """The stored events as objects, built only when someone asks (plugin hooks)."""
        return [_to_event(r) for r in self.rows]


class Store:
    """Reads and writes recsdk's tables through one engine."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = (
            make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        )
        self.dialect = self.engine.dialect.name
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        #: PostgreSQL: months known to have an events partition (see storage.partitions)
        self.partitions = partitions.PartitionCache()

    # ---- schema ----------------------------------------------------------------------

    def create_all(self) -> None:
        """Create missing tables directly (tests); users run ``recsdk db upgrade``.

        On PostgreSQL events are then partitioned as migration 0010 does."""
        models.Base.metadata.create_all(self.engine)
        if self.dialect == "postgresql":
            with self.engine.begin() as conn:
                if not partitions.is_partitioned(conn):
                    partitions.to_partitioned(conn)

    def upgrade(self) -> None:
        """Migrate the database to the latest schema with alembic (under the lock)."""
        from recsdk.storage.migrate import upgrade

        upgrade(self.engine)

    def ensure_schema(self, migrate: bool) -> None:
        """Upgrade an old schema (``migrate``) or refuse it with :class:`SchemaOutdated`.

        See :func:`recsdk.storage.migrate.ensure_schema`; servers pass ``migrate=False``
        so that they never migrate behind a deploy's back.
        """
        from recsdk.storage.migrate import ensure_schema

        ensure_schema(self.engine, migrate)

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # ---- events ----------------------------------------------------------------------

    @retry_conflicts
    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> InsertReport:
        """Store validated event rows in one transaction; skip repeated ``event_id``s.

        Keyed rows are written in ``event_id`` order, so overlapping batches from
        concurrent clients take their locks in the same order; a transaction that
        still loses a deadlock is run again (see :mod:`recsdk.storage.retry`).
        """
        now = datetime.now(UTC)
        seen: set[str] = set()
        keyed: list[tuple[Any, ...]] = []
        plain: list[tuple[Any, ...]] = []
        for row in rows:
            eid = row.get("event_id")
            rec = (row["user_id"], row.get("session_id"), row["item_id"], row["type"],
                   row.get("timestamp") or now, row.get("value"), row.get("context"), eid)
            if eid is None:
                plain.append(rec)
            elif eid not in seen:
                seen.add(eid)
                keyed.append(rec)
        keyed.sort(key=lambda r: r[7])
        writer = _PostgresEvents if self.dialect == "postgresql" else _SqliteEvents

        def write() -> list[tuple[Any, ...]]:
            with self.engine.begin() as conn, _driver_errors(conn, "INSERT INTO events ..."):
                return writer.write(conn, plain, keyed)

        stored_keyed = self._into_partitions(
            lambda: partitions.months_of(r[4] for r in (*plain, *keyed)), write)
        stored = plain + stored_keyed
        return InsertReport(
            received=len(rows),
            stored=len(stored),
            duplicates=len(rows) - len(stored),
            rows=stored,
        )

    def copy_events(self, frame: pd.DataFrame) -> int:
        """Bulk-load a clean events frame (PostgreSQL COPY, SQLite executemany).

        For imports of files already validated column by column: columns
        ``user_id, item_id, type, timestamp`` and optional ``session_id, value``.
        Rows with an ``event_id`` go through :meth:`add_events`, for idempotency.
        Values are encoded column-wise (:mod:`recsdk.storage.bulk`), not row by row.
        """
        n = len(frame)
        if n == 0:
            return 0
        if self.dialect == "postgresql":  # encoded before the transaction starts
            micros = bulk.utc_microseconds(frame["timestamp"])
            data = bulk.pg_binary_copy(frame.assign(timestamp=micros.astype("datetime64[us]")),
                                       _PostgresEvents.BULK)

            def write() -> None:
                with self.engine.begin() as conn, _driver_errors(conn, "COPY events ..."):
                    _PostgresEvents.copy_binary(conn, data)

            self._into_partitions(lambda: partitions.months_of_micros(micros), write)
        else:
            rows = bulk.sqlite_rows(frame, ("user_id", "session_id", "item_id", "type"),
                                    tail=2)
            with self.engine.begin() as conn, _driver_errors(conn, "INSERT INTO events ..."), \
                    _sqlite_page_cache(conn, SQLITE_BULK_CACHE_KIB):
                conn.exec_driver_sql(_SqliteEvents.SQL, rows)
        return n

    def _into_partitions(self, months: Callable[[], set[partitions.Month]],
                         write: Callable[[], _T]) -> _T:
        """Run an events ``write`` once the partitions of its ``months`` exist
        (PostgreSQL; a month another process dropped meanwhile fills the DEFAULT
        partition instead, see :mod:`recsdk.storage.partitions`)."""
        if self.dialect == "postgresql":
            self.partitions.ensure(self.engine, months())
        return write()

    def drop_event_months(self, before: datetime, *, dry_run: bool = False
                          ) -> list[partitions.Dropped]:
        """Retention: drop the monthly event partitions that end at or before
        ``before`` (PostgreSQL only; see :func:`recsdk.storage.partitions.drop_before`).

        Whole months go, so events from ``before``'s own month stay until the month
        is entirely older than the cut-off. ``dry_run`` only lists them with counts.
        """
        if self.dialect != "postgresql":
            raise ConfigurationError(
                "event retention drops monthly partitions, which only PostgreSQL has; "
                f"this database is {self.dialect}")
        dropped = partitions.drop_before(self.engine, before, dry_run=dry_run)
        if dropped and not dry_run:
            self.partitions.forget()  # a late event of a dropped month recreates it
        return dropped

    def count_events(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(models.Event)) or 0)

    def events_frame(self, since: datetime | None = None,
                     through_id: int | None = None) -> pd.DataFrame:
        """All events (or those after ``since``, up to row id ``through_id``) as a
        frame, oldest first."""
        table = models.Event.__table__
        stmt = select(
            table.c.user_id, table.c.session_id, table.c.item_id, table.c.type,
            table.c.timestamp, table.c.value,
        ).order_by(table.c.timestamp, table.c.id)
        if since is not None:
            stmt = stmt.where(table.c.timestamp > since)
        if through_id is not None:
            stmt = stmt.where(table.c.id <= through_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        frame = pd.DataFrame(
            rows, columns=["user_id", "session_id", "item_id", "type", "timestamp", "value"]
        )
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame["value"] = frame["value"].astype(float)
        return frame

    def iter_event_columns(self, through_id: int | None = None,
                           chunk_rows: int = EVENT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """Events up to row id ``through_id`` (all when None) in row-id order, as frames
        of at most ``chunk_rows`` rows with the :data:`EVENT_COLUMN_CHUNK` columns.

        Training reads this instead of :meth:`events_frame`: keyset pages on the primary
        key keep memory to one chunk whatever the table's size, and columns arrive as
        arrays (PostgreSQL ``COPY ... TO STDOUT`` parsed by pandas' C CSV reader; SQLite
        through the DB-API), with no SQLAlchemy row object or ``datetime`` per event.
        ``micros`` are UTC microseconds since the epoch; a missing session is None or
        NaN, a missing value NaN.
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        read = _PostgresEvents.read_chunk if self.dialect == "postgresql" else \
            _SqliteEvents.read_chunk
        last = 0
        with self.engine.connect() as conn:
            upper = through_id if through_id is not None else int(conn.execute(
                select(func.max(models.Event.__table__.c.id))).scalar() or 0)
            raw = conn.connection.dbapi_connection
            while last < upper:
                chunk = read(raw, last, upper, chunk_rows)
                if chunk.empty:
                    return
                last = int(chunk["id"].iloc[-1])
                yield chunk

    def history(
        self, user_id: str | None, session_id: str | None = None, limit: int = 200
    ) -> list[tuple[str, str, datetime, float | None, str | None]]:
        """The newest ``limit`` events of a user or session, oldest first, as
        ``(item, type, timestamp, value, session)``."""
        table = models.Event.__table__
        stmt = select(table.c.item_id, table.c.type, table.c.timestamp, table.c.value,
                      table.c.session_id)
        if user_id is not None:
            stmt = stmt.where(table.c.user_id == user_id)
        elif session_id is not None:
            stmt = stmt.where(table.c.session_id == session_id)
        else:
            return []
        stmt = stmt.order_by(table.c.timestamp.desc(), table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [tuple(r) for r in reversed(rows)]  # type: ignore[misc]

    def max_event_id(self) -> int:
        """The newest stored event's row id (0 when none): a training run's cut-off."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(models.Event.__table__.c.id))).scalar()
                       or 0)

    def events_after(self, event_row_id: int, limit: int = 100_000
                     ) -> tuple[list[Event], int]:
        """Events stored after row id ``event_row_id`` (oldest first, at most ``limit``)
        and the last row id read, so a model loaded later catches up with them."""
        table = models.Event.__table__
        cols = [table.c[c] for c in EVENT_COLUMNS]
        stmt = (select(table.c.id, *cols).where(table.c.id > event_row_id)
                .order_by(table.c.id).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        last = rows[-1][0] if rows else event_row_id
        return [_to_event(tuple(r[1:])) for r in rows], int(last)

    # ---- catalogue -------------------------------------------------------------------

    def upsert_categories(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update categories; cycles and over-deep chains are refused.

        The tree is judged with the stored categories, inside the writing transaction
        and with category writers serialised, so a cycle is refused however it is built
        (A under B in one request, B under A in a later or concurrent one).
        """
        rows = [{**r, "name": r.get("name") or r["id"]} for r in rows]
        known = self._existing_ids(models.Category, {r.get("parent_id") for r in rows})
        known |= {r["id"] for r in rows}
        bad = {
            i: {"parent_id": [f"Unknown category {r['parent_id']!r}."]}
            for i, r in enumerate(rows)
            if r.get("parent_id") is not None and r["parent_id"] not in known
        }
        if bad:
            raise ValidationFailed(bad, "categories")
        return self._upsert_categories(rows)

    @retry_conflicts
    def _upsert_categories(self, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        with self.engine.begin() as conn:
            self._check_category_tree(conn, rows)
            # parents first so that foreign keys hold inside the transaction
            self._write_upsert(conn, models.Category, _parents_first(rows), keep_order=True)
        return len(rows)

    def _check_category_tree(self, conn: Connection, rows: Sequence[Mapping[str, Any]]
                             ) -> None:
        _lock_categories(conn)
        table = models.Category.__table__
        parents: dict[str, str | None] = {
            child: parent for child, parent in conn.execute(select(table.c.id,
                                                                   table.c.parent_id))}
        for r in rows:
            if "parent_id" in r:
                parents[r["id"]] = r["parent_id"]
            else:  # left out: the stored parent stays
                parents.setdefault(r["id"], None)
        problems = category_problems(parents, [r["id"] for r in rows])
        if problems:
            raise ValidationFailed({i: {"parent_id": [problems[r["id"]]]}
                                    for i, r in enumerate(rows) if r["id"] in problems},
                                   "categories")

    def upsert_items(self, rows: Sequence[Mapping[str, Any]]) -> int:
        wanted = {r["category_id"] for r in rows if r.get("category_id") is not None}
        known = self._existing_ids(models.Category, wanted)
        bad = {
            i: {"category_id": [f"Unknown category {r['category_id']!r}; "
                                "create it first (categories endpoint or upsert_categories)."]}
            for i, r in enumerate(rows)
            if r.get("category_id") is not None and r["category_id"] not in known
        }
        if bad:
            raise ValidationFailed(bad, "items")
        return self._upsert(models.Item, rows)

    def upsert_users(self, rows: Sequence[Mapping[str, Any]]) -> int:
        return self._upsert(models.User, rows)

    def _existing_ids(self, model: type[models.Base], ids: Iterable[Any]) -> set[str]:
        ids = [i for i in ids if i is not None]
        if not ids:
            return set()
        out: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                out |= set(conn.execute(select(model.id).where(model.id.in_(chunk))).scalars())
        return out

    @retry_conflicts
    def _upsert(self, model: type[models.Base], rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update by id; a field left out of a row keeps its stored value."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            self._write_upsert(conn, model, rows)
        return len(rows)

    def _write_upsert(self, conn: Connection, model: type[models.Base],
                      rows: Sequence[Mapping[str, Any]], keep_order: bool = False) -> None:
        """Rows go in id order (one lock order for every writer) unless ``keep_order``
        (categories: parents first, for the foreign keys)."""
        table = model.__table__
        now = datetime.now(UTC)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in {r["id"]: r for r in rows}.values():  # last write of an id wins
            rec = dict(row)
            if "updated_at" in table.c:
                rec["updated_at"] = now
            groups.setdefault(tuple(sorted(rec)), []).append(rec)
        for keys, recs in groups.items():
            if not keep_order:
                recs.sort(key=lambda r: str(r["id"]))
            stmt = self._insert(table)
            update = {k: stmt.excluded[k] for k in keys if k != "id"}
            stmt = (
                stmt.on_conflict_do_update(index_elements=["id"], set_=update)
                if update else stmt.on_conflict_do_nothing(index_elements=["id"])
            )
            conn.execute(stmt, recs)

    def catalog_version(self) -> str:
        """Changes whenever an item or category is written: counts and latest update."""
        items, cats = models.Item.__table__, models.Category.__table__
        with self.engine.connect() as conn:
            n_items, item_ts = conn.execute(
                select(func.count(), func.max(items.c.updated_at))).one()
            n_cats, cat_ts = conn.execute(
                select(func.count(), func.max(cats.c.updated_at))).one()
        return f"{n_items}:{item_ts}:{n_cats}:{cat_ts}"

    def items_frame(self) -> pd.DataFrame:
        cols = ["id", "title", "description", "category_id", "tags", "price",
                "original_price", "stock", "active", "image_url", "attributes",
                "created_at", "updated_at"]
        table = models.Item.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(*[table.c[c] for c in cols]).order_by(table.c.id)).all()
        return pd.DataFrame(rows, columns=cols)

    def categories_frame(self) -> pd.DataFrame:
        table = models.Category.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.id, table.c.name, table.c.parent_id)).all()
        return pd.DataFrame(rows, columns=["id", "name", "parent_id"])

    def users_frame(self) -> pd.DataFrame:
        table = models.User.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.id, table.c.attributes)).all()
        return pd.DataFrame(rows, columns=["id", "attributes"])

    # ---- experiments -------------------------------------------------------------------

    def experiment_records(self) -> dict[str, dict[str, Any]]:
        """Each experiment's stored assignment settings, by name."""
        table = models.ExperimentRecord.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.name, table.c.record)).all()
        return {name: dict(record) for name, record in rows}

    def save_experiment_record(self, name: str, record: Mapping[str, Any]) -> None:
        """Store (insert or replace) an experiment's assignment settings."""
        table = models.ExperimentRecord.__table__
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            done = conn.execute(update(table).where(table.c.name == name)
                                .values(record=dict(record), recorded_at=now)).rowcount
            if not done:
                try:
                    with conn.begin_nested():
                        conn.execute(table.insert().values(
                            name=name, record=dict(record), first_seen_at=now,
                            recorded_at=now))
                except IntegrityError:  # another process recorded it first
                    conn.execute(update(table).where(table.c.name == name)
                                 .values(record=dict(record), recorded_at=now))

    # ---- served lists and feedback -----------------------------------------------------

    def record_requests(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store served lists: each record has the request's columns and ``items``,
        a list of (item_id, position, score) or (item_id, position, score, propensity)."""
        if self.dialect == "sqlite":
            self._record_requests_sqlite(records)
            return
        requests = []
        impressions = []
        for r in records:
            requests.append({
                "id": r["request_id"], "user_id": r.get("user_id"),
                "session_id": r.get("session_id"), "placement": r["placement"],
                "variant": r["variant"], "experiment": r.get("experiment"),
                "forced": bool(r.get("forced", False)), "config_hash": r["config_hash"],
                "plugins": list(r["plugins"]), "degraded": bool(r["degraded"]),
                "latency_ms": r.get("latency_ms"), "failures": int(r.get("failures", 0)),
                "created_at": r.get("created_at") or datetime.now(UTC),
            })
            impressions += [{"request_id": r["request_id"], "item_id": i, "position": p,
                             "score": s, "propensity": q}
                            for i, p, s, q in map(_impression, r["items"])]
        with self.engine.begin() as conn:
            if requests:
                conn.execute(models.RecommendationRequest.__table__.insert(), requests)
            if impressions:
                conn.execute(models.Impression.__table__.insert(), impressions)

    def _record_requests_sqlite(self, records: Sequence[Mapping[str, Any]]) -> None:
        """The driver's executemany with tuples, no per-row SQLAlchemy work (the
        values encoded as the models' types store them, as for events)."""
        requests = [
            (r["request_id"], r.get("user_id"), r.get("session_id"), r["placement"],
             r["variant"], r.get("experiment"), int(bool(r.get("forced", False))),
             r["config_hash"], json.dumps(list(r["plugins"])),
             int(bool(r["degraded"])), r.get("latency_ms"), int(r.get("failures", 0)),
             (r.get("created_at") or datetime.now(UTC)).astimezone(UTC).strftime(
                 SQLITE_TIMESTAMP))
            for r in records]
        impressions = [(r["request_id"], *_impression(item)) for r in records
                       for item in r["items"]]
        with self.engine.begin() as conn:  # driver errors arrive wrapped, as IntegrityError
            if requests:
                conn.exec_driver_sql(
                    "INSERT INTO recommendation_requests (id, user_id, session_id, placement, "
                    "variant, experiment, forced, config_hash, plugins, degraded, latency_ms, "
                    "failures, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    requests)
            if impressions:
                conn.exec_driver_sql("INSERT INTO impressions (request_id, item_id, position, "
                                     "score, propensity) VALUES (?, ?, ?, ?, ?)", impressions)

    def request_info(self, request_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Variant, plugins and shown items of served requests, by id."""
        ids = list(set(request_ids))
        if not ids:
            return {}
        req = models.RecommendationRequest.__table__
        imp = models.Impression.__table__
        with self.engine.connect() as conn:
            reqs = conn.execute(select(req).where(req.c.id.in_(ids))).mappings().all()
            shown = conn.execute(
                select(imp.c.request_id, imp.c.item_id, imp.c.position)
                .where(imp.c.request_id.in_(ids))
            ).all()
        out = {r["id"]: {**r, "positions": {}} for r in reqs}
        for request_id, item_id, position in shown:
            out[request_id]["positions"][item_id] = position
        return out

    def add_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(models.Feedback.__table__.insert(), [dict(r) for r in rows])

    def prune_requests(self, before: datetime, batch: int = 1000) -> dict[str, int]:
        """Delete served lists created before ``before``, with their impressions.

        A list that received feedback is kept whole: the feedback rows reference it
        (deleting it would cascade to them) and it says what else was shown beside the
        clicked item. Each batch of ``batch`` lists is its own short transaction, so
        serving processes writing their logs wait at most one batch.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        req = models.RecommendationRequest.__table__
        imp = models.Impression.__table__
        unreferenced = _without_feedback(req)
        totals = {"requests": 0, "impressions": 0}
        while True:
            with self.engine.begin() as conn:
                ids = list(conn.execute(
                    select(req.c.id).where(req.c.created_at < before, unreferenced)
                    .limit(batch)).scalars())
                if not ids:
                    break
                # the feedback check again: feedback may have arrived since the select
                doomed = select(req.c.id).where(req.c.id.in_(ids), unreferenced)
                totals["impressions"] += conn.execute(
                    delete(imp).where(imp.c.request_id.in_(doomed))).rowcount
                totals["requests"] += conn.execute(
                    delete(req).where(req.c.id.in_(ids), unreferenced)).rowcount
            if len(ids) < batch:
                break
        return totals

    def count_prunable_requests(self, before: datetime) -> dict[str, int]:
        """What :meth:`prune_requests` would delete now (for a dry run)."""
        req = models.RecommendationRequest.__table__
        imp = models.Impression.__table__
        old = select(req.c.id).where(req.c.created_at < before,
                                     _without_feedback(req)).subquery()
        with self.engine.connect() as conn:
            n_requests = conn.execute(select(func.count()).select_from(old)).scalar_one()
            n_impressions = conn.execute(
                select(func.count()).select_from(imp).where(
                    imp.c.request_id.in_(select(old.c.id)))).scalar_one()
        return {"requests": int(n_requests), "impressions": int(n_impressions)}

    def count_served(self) -> dict[str, int]:
        """Rows in the served-list tables: requests, impressions and feedback."""
        tables = {"requests": models.RecommendationRequest, "impressions": models.Impression,
                  "feedback": models.Feedback}
        with self.engine.connect() as conn:
            return {name: int(conn.execute(
                select(func.count()).select_from(model.__table__)).scalar_one())
                for name, model in tables.items()}

    # ---- model artifacts ---------------------------------------------------------------

    def save_artifact(
        self, name: str, arrays: Mapping[str, np.ndarray], config_hash: str,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Store arrays as a new ``.npz`` version of artifact ``name``; return it."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        table = models.ModelArtifact.__table__
        with self.engine.begin() as conn:
            latest = conn.execute(
                select(func.max(table.c.version)).where(table.c.name == name)
            ).scalar()
            version = (latest or 0) + 1
            conn.execute(table.insert(), [{
                "name": name, "version": version, "config_hash": config_hash,
                "format": "npz", "data": buf.getvalue(), "meta": dict(meta or {}),
                "created_at": datetime.now(UTC),
            }])
        return version

    def load_artifact(self, name: str, version: int | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata of an artifact (latest version by default)."""
        table = models.ModelArtifact.__table__
        stmt = select(table.c.data, table.c.meta, table.c.version, table.c.config_hash).where(
            table.c.name == name)
        stmt = (stmt.where(table.c.version == version) if version is not None
                else stmt.order_by(table.c.version.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        with np.load(io.BytesIO(row[0]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = dict(row[1] or {})
        meta.update(version=row[2], config_hash=row[3])
        return arrays, meta

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True


#: How SQLAlchemy's SQLite DateTime stores a (UTC) timestamp; raw writes must match.
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
EVENT_COLUMNS = ("user_id", "session_id", "item_id", "type", "timestamp", "value", "context",
                 "event_id")


def _epoch_micros(stamps: pd.Series) -> np.ndarray:
    """UTC microseconds since the epoch of a timezone-aware datetime column (int64)."""
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]") \
        .view(np.int64)


def _to_event(r: tuple[Any, ...]) -> Event:
    return Event(user_id=r[0], session_id=r[1], item_id=r[2], type=r[3], timestamp=r[4],
                 value=r[5], context=r[6], event_id=r[7])


class _SqliteEvents:
    """Event rows straight through the DB-API: SQLAlchemy's per-value processing
    costs more than SQLite's insert. Values are encoded exactly as the models'
    types store them (UTC text timestamps, JSON text)."""

    SQL = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})")

    @staticmethod
    def _encode(r: tuple[Any, ...]) -> tuple[Any, ...]:
        ts = r[4].astimezone(UTC) if r[4].tzinfo else r[4]
        return (r[0], r[1], r[2], r[3], ts.strftime(SQLITE_TIMESTAMP), r[5],
                None if r[6] is None else json.dumps(r[6]), r[7])

    READ = ("SELECT id, user_id, session_id, item_id, type, timestamp, value FROM events "
            "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")

    @classmethod
    def read_chunk(cls, raw: Any, after: int, through: int, limit: int) -> pd.DataFrame:
        """One keyset page of events as columns (see ``Store.iter_event_columns``)."""
        cursor = raw.cursor()
        try:
            rows = cursor.execute(cls.READ, (after, through, limit)).fetchall()
        finally:
            cursor.close()
        if not rows:
            return pd.DataFrame(columns=list(EVENT_COLUMN_CHUNK))
        ids, users, sessions, items, types, stamps, values = zip(*rows, strict=True)
        del rows
        micros = pd.to_datetime(pd.Series(stamps, dtype=object), format="ISO8601", utc=True)
        return pd.DataFrame({
            "id": np.asarray(ids, dtype=np.int64),
            "user_id": np.asarray(users, dtype=object),
            "session_id": np.asarray(sessions, dtype=object),
            "item_id": np.asarray(items, dtype=object),
            "type": np.asarray(types, dtype=object),
            "micros": _epoch_micros(micros),
            "value": np.asarray(values, dtype=np.float64),  # None -> NaN
        })

    @classmethod
    def write(cls, conn: Any, plain: list[tuple[Any, ...]],
              keyed: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if plain:
            conn.exec_driver_sql(cls.SQL, [cls._encode(r) for r in plain])
        stored = []
        if keyed:
            cursor = conn.connection.dbapi_connection.cursor()
            sql = cls.SQL.replace("INSERT INTO", "INSERT OR IGNORE INTO")
            for r in keyed:  # rowcount tells which event ids were new
                cursor.execute(sql, cls._encode(r))
                if cursor.rowcount == 1:
                    stored.append(r)
            cursor.close()
        return stored


class _PostgresEvents:
    """PostgreSQL COPY for new events; keyed ones through a temporary table, their
    ids claimed in ``event_keys`` (``ON CONFLICT DO NOTHING RETURNING`` says which
    were new) and only those rows inserted, in the same transaction. The partitions
    the rows need exist already (:class:`recsdk.storage.partitions.PartitionCache`)."""

    COLUMNS = ", ".join(EVENT_COLUMNS)
    PREFIXED = ", ".join(f"i.{c}" for c in EVENT_COLUMNS)
    #: The columns (and their binary COPY kinds) of bulk-loaded events.
    BULK = (("user_id", bulk.TEXT), ("session_id", bulk.TEXT), ("item_id", bulk.TEXT),
            ("type", bulk.TEXT), ("timestamp", bulk.TIMESTAMP), ("value", bulk.FLOAT))

    READ = ("COPY (SELECT id, user_id, session_id, item_id, type, "
            "(extract(epoch FROM timestamp) * 1000000)::bigint, value FROM events "
            "WHERE id > {after:d} AND id <= {through:d} ORDER BY id LIMIT {limit:d}) "
            "TO STDOUT WITH (FORMAT csv, NULL '\\N')")

    @classmethod
    def read_chunk(cls, raw: Any, after: int, through: int, limit: int) -> pd.DataFrame:
        """One keyset page of events as columns (see ``Store.iter_event_columns``):
        ``COPY`` text parsed by pandas' C reader, no Python object per row but strings."""
        buf = io.BytesIO()
        with raw.cursor() as cursor, cursor.copy(
                cls.READ.format(after=after, through=through, limit=limit)) as copy:
            for block in copy:
                buf.write(block)
        if not buf.tell():
            return pd.DataFrame(columns=list(EVENT_COLUMN_CHUNK))
        buf.seek(0)
        text_columns = ("user_id", "session_id", "item_id", "type")
        return pd.read_csv(
            buf, header=None, names=list(EVENT_COLUMN_CHUNK), engine="c",
            dtype={"id": np.int64, "micros": np.int64, "value": np.float64,
                   **dict.fromkeys(text_columns, object)},
            # only COPY's unquoted \\N is missing: ids such as "NA" or "null" stay text
            keep_default_na=False, na_values=["\\N"], quoting=csv.QUOTE_MINIMAL)

    @classmethod
    def copy_binary(cls, conn: Any, data: bytes) -> None:
        """COPY a binary stream (:func:`recsdk.storage.bulk.pg_binary_copy` of the
        :attr:`BULK` columns) into events."""
        raw = conn.connection.dbapi_connection
        names = ", ".join(name for name, _ in cls.BULK)
        with raw.cursor() as cursor, cursor.copy(
            f"COPY events ({names}) FROM STDIN WITH (FORMAT binary)"
        ) as copy:
            copy.write(data)

    @staticmethod
    def _copy(cursor: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
        with cursor.copy(f"COPY {table} ({_PostgresEvents.COLUMNS}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r if r[6] is None else (*r[:6], json.dumps(r[6]), r[7]))

    @classmethod
    def write(cls, conn: Any, plain: list[tuple[Any, ...]],
              keyed: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        raw = conn.connection.dbapi_connection
        stored: list[tuple[Any, ...]] = []
        with raw.cursor() as cursor:
            if plain:
                cls._copy(cursor, "events", plain)
            if keyed:
                cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS incoming_events "
                               "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                cls._copy(cursor, "incoming_events", keyed)
                cursor.execute(
                    f"WITH new AS (INSERT INTO {partitions.KEYS_TABLE} (event_id, timestamp) "
                    "SELECT event_id, timestamp FROM incoming_events "
                    "ORDER BY event_id "  # one lock order for all
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id) "
                    f"INSERT INTO events ({cls.COLUMNS}) SELECT {cls.PREFIXED} "
                    "FROM incoming_events i JOIN new ON new.event_id = i.event_id "
                    "ORDER BY i.event_id RETURNING event_id")
                new_ids = {row[0] for row in cursor.fetchall()}
                cursor.execute("DELETE FROM incoming_events")
                stored = [r for r in keyed if r[7] in new_ids]
        return stored


@contextmanager
def _driver_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's errors on a raw cursor (COPY, rowcounts) as SQLAlchemy raises
    them for its own statements (``OperationalError`` ...), so that a deadlock is
    retried (:mod:`recsdk.storage.retry`) and a lost connection answers 503, not 500."""
    driver = conn.dialect.loaded_dbapi
    try:
        yield
    except driver.Error as exc:
        raise DBAPIError.instance(statement, None, exc, driver.Error,
                                  dialect=conn.dialect) from exc


#: SQLite page cache (KiB) while a bulk chunk is written: with SQLite's default 2 MiB,
#: a 100,000-row chunk's index pages spill to the WAL again and again mid-transaction,
#: so a chunk got slower as the indexes outgrew the cache; with room for them each
#: dirty page is written once, at commit. Restored after the chunk (memory is freed).
SQLITE_BULK_CACHE_KIB = 262_144


@contextmanager
def _sqlite_page_cache(conn: Connection, kib: int) -> Iterator[None]:
    """Give this SQLite connection a page cache of ``kib`` KiB for the block."""
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _without_feedback(requests: Any) -> Any:
    """Served lists no feedback row references: the ones pruning may delete."""
    return ~exists().where(models.Feedback.__table__.c.request_id == requests.c.id)


#: Key of the PostgreSQL advisory lock that serialises category writers.
CATEGORY_LOCK_KEY = 0x7265_6373_6361_74  # "recscat"


def _lock_categories(conn: Connection) -> None:
    """Hold the category writers' lock until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATEGORY_LOCK_KEY})
    else:  # SQLite: a first write statement takes the database's write lock
        conn.execute(text("UPDATE categories SET id = id WHERE 0"))


def _parents_first(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Category rows ordered so that a parent given in the same batch comes first.

    Counts each row's ancestors within the batch iteratively (the tree was checked
    for cycles and depth already, so every walk ends).
    """
    by_id = {r["id"]: r for r in rows}

    def level(row: Mapping[str, Any]) -> int:
        n, seen, parent = 0, {row["id"]}, row.get("parent_id")
        while parent in by_id and parent not in seen:
            seen.add(parent)
            n += 1
            parent = by_id[parent].get("parent_id")
        return n

    return sorted(rows, key=level)


def _impression(item: Sequence[Any]) -> tuple[str, int, float, float | None]:
    """(item_id, position, score, propensity) of a served item; propensity None when
    the record gives none."""
    item_id, position, score, *rest = item
    return item_id, position, score, (rest[0] if rest else None)
