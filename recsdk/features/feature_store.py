"""Item feature vectors kept in the database, recomputed only when an item changes.

Sentence embeddings and CNN image vectors cost a model pass per item; a catalogue of
100,000 items where a hundred changed a day should pay for a hundred. Each stored row
carries the extractor's ``version`` and a hash of the content it read; :meth:`sync`
reuses rows where both still match and computes the rest.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from recsdk.features.vectors import Matrix, stack_rows
from recsdk.storage.models import ItemFeature
from recsdk.storage.store import Store

#: Rows read or written per statement.
CHUNK = 1000


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`FeatureStore.sync` did for one feature name."""

    name: str
    version: str
    computed: int
    reused: int

    @property
    def total(self) -> int:
        return self.computed + self.reused


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def encode_vector(row: Matrix) -> tuple[str, int, bytes]:
    """(format, dimension, bytes) of one row: ``.npy`` float32, or ``.npz`` when sparse."""
    buf = io.BytesIO()
    if sp.issparse(row):
        csr = sp.csr_matrix(row)
        np.savez(buf, indices=csr.indices.astype(np.int32),
                 values=csr.data.astype(np.float32), dim=np.array([csr.shape[1]]))
        return "sparse", int(csr.shape[1]), buf.getvalue()
    vector = np.asarray(row, dtype="<f4").ravel()
    return "dense", len(vector), _npy_header(len(vector)) + vector.tobytes()


@lru_cache(maxsize=64)
def _npy_header(dim: int) -> bytes:
    """The ``.npy`` header of a float32 vector of ``dim`` values (the same for all)."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(dim, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()[: -4 * dim]


_NPY_MAGIC = b"\x93NUMPY"
#: Parsed ``.npy`` headers (all vectors of one extractor share one): parsing each
#: header again would cost more than reading the vector.
_NPY_HEADERS: dict[bytes, tuple[tuple[int, ...], np.dtype, int]] = {}


def _read_npy(blob: bytes) -> np.ndarray:
    """A ``.npy`` array from bytes, refusing object arrays (data, never code)."""
    if blob[:6] != _NPY_MAGIC:
        raise ValueError("stored dense feature is not .npy data")
    size_bytes = 2 if blob[6] == 1 else 4
    start = 8 + size_bytes + int.from_bytes(blob[8:8 + size_bytes], "little")
    header = blob[:start]
    parsed = _NPY_HEADERS.get(header)
    if parsed is None:
        fp = io.BytesIO(header)
        major, _ = np.lib.format.read_magic(fp)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fp)
        if dtype.hasobject or fortran:
            raise ValueError("stored feature holds objects or Fortran order; refusing it")
        parsed = _NPY_HEADERS.setdefault(header, (shape, dtype, math.prod(shape)))
    shape, dtype, count = parsed
    return np.frombuffer(blob, dtype=dtype, count=count, offset=start).reshape(shape)


def decode_vector(fmt: str, dim: int, blob: bytes) -> Matrix:
    """The row :func:`encode_vector` wrote (``allow_pickle=False``: data, never code)."""
    if fmt == "sparse":
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            indices, values = npz["indices"], npz["values"]
        return sp.csr_matrix((values, indices, np.array([0, len(indices)])), shape=(1, dim))
    if fmt == "dense":
        return _read_npy(blob).reshape(1, dim)
    raise ValueError(f"unknown stored feature format {fmt!r}")


class FeatureStore:
    """Reads and writes the ``item_features`` table (SQLite or PostgreSQL)."""

    def __init__(self, store: Store | Engine | str) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.engine = self.store.engine
        self._table = ItemFeature.__table__

    def _upsert_statement(self) -> Any:
        """Insert-or-update on (item_id, name), in the engine's own dialect."""
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(self._table)
        columns = ("version", "content_hash", "format", "dim", "vector", "updated_at")
        return stmt.on_conflict_do_update(index_elements=["item_id", "name"],
                                          set_={c: stmt.excluded[c] for c in columns})

    def stored(self, name: str, item_ids: Sequence[str]
               ) -> dict[str, tuple[str, str, str, int, bytes]]:
        """item_id -> (version, content_hash, format, dim, bytes) of stored rows."""
        t = self._table
        out = {}
        with self.engine.connect() as conn:
            for start in range(0, len(item_ids), CHUNK):
                chunk = list(item_ids[start:start + CHUNK])
                rows = conn.execute(
                    select(t.c.item_id, t.c.version, t.c.content_hash, t.c.format, t.c.dim,
                           t.c.vector).where(t.c.name == name, t.c.item_id.in_(chunk)))
                for item_id, *rest in rows:
                    out[item_id] = tuple(rest)
        return out

    def write(self, name: str, version: str, item_ids: Sequence[str],
              hashes: Sequence[str], vectors: Matrix) -> int:
        """Upsert one row per item (one transaction per chunk)."""
        now = datetime.now(UTC)
        stmt = self._upsert_statement()
        for start in range(0, len(item_ids), CHUNK):
            records = []
            for row in range(start, min(start + CHUNK, len(item_ids))):
                fmt, dim, blob = encode_vector(vectors[row:row + 1])
                records.append({"item_id": item_ids[row], "name": name, "version": version,
                                "content_hash": hashes[row], "format": fmt, "dim": dim,
                                "vector": blob, "updated_at": now})
            with self.engine.begin() as conn:
                conn.execute(stmt, records)
        return len(item_ids)

    def sync(self, name: str, version: str, item_ids: Sequence[str],
             contents: Sequence[str], encode: Callable[[list[int]], Matrix],
             ) -> tuple[Matrix, SyncReport]:
        """Vectors of ``item_ids`` in order: stored ones where version and content hash
        match, the others from ``encode(positions)`` (then stored).

        ``contents[i]`` is what the extractor reads for item ``i`` (its text, its
        image file's identity); ``encode`` receives positions into ``item_ids``.
        """
        if len(item_ids) != len(contents):
            raise ValueError(f"{len(contents)} contents for {len(item_ids)} items")
        ids = [str(i) for i in item_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("item_ids must not repeat")
        hashes = [content_hash(c) for c in contents]
        stored = self.stored(name, ids)
        rows: list[Matrix | None] = [None] * len(ids)
        todo = []
        for pos, (item_id, digest) in enumerate(zip(ids, hashes, strict=True)):
            hit = stored.get(item_id)
            if hit is not None and hit[0] == version and hit[1] == digest:
                rows[pos] = decode_vector(hit[2], hit[3], hit[4])
            else:
                todo.append(pos)
        if todo:
            computed = encode(todo)
            if computed.shape[0] != len(todo):
                raise ValueError(f"encode returned {computed.shape[0]} rows for {len(todo)}")
            self.write(name, version, [ids[p] for p in todo], [hashes[p] for p in todo],
                       computed)
            for j, pos in enumerate(todo):
                rows[pos] = computed[j:j + 1]
        dims = {r.shape[1] for r in rows if r is not None}
        if len(dims) > 1:  # stored rows of another width: the extractor changed
            raise ValueError(f"stored {name!r} vectors have widths {sorted(dims)}; "
                             "delete them (FeatureStore.delete) and sync again")
        matrix = stack_rows(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return matrix, SyncReport(name, version, len(todo), len(ids) - len(todo))

    def load(self, name: str, item_ids: Sequence[str]) -> tuple[Matrix | None, np.ndarray]:
        """Stored vectors of ``item_ids`` (zeros where absent) and a found mask."""
        ids = [str(i) for i in item_ids]
        stored = self.stored(name, ids)
        found = np.array([i in stored for i in ids], dtype=bool)
        if not found.any():
            return None, found
        rows = [decode_vector(*stored[i][2:]) if i in stored else None for i in ids]
        dim = next(r.shape[1] for r in rows if r is not None)
        sparse = any(sp.issparse(r) for r in rows if r is not None)
        blank = sp.csr_matrix((1, dim), dtype=np.float32) if sparse else np.zeros(
            (1, dim), dtype=np.float32)
        return stack_rows([blank if r is None else r for r in rows]), found

    def delete(self, name: str | None = None, item_ids: Sequence[str] | None = None) -> int:
        """Remove stored vectors (of one name, of some items); returns rows removed."""
        t = self._table
        stmt = delete(t)
        if name is not None:
            stmt = stmt.where(t.c.name == name)
        removed = 0
        with self.engine.begin() as conn:
            if item_ids is None:
                return conn.execute(stmt).rowcount
            ids = [str(i) for i in item_ids]
            for start in range(0, len(ids), CHUNK):
                removed += conn.execute(
                    stmt.where(t.c.item_id.in_(ids[start:start + CHUNK]))).rowcount
        return removed
