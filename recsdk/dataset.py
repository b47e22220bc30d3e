"""The training view of behaviour: vocabularies, an interaction log and a user x item matrix.

Every plugin fits on the same :class:`InteractionDataset`, so user and item codes are
shared: the request path computes candidate codes once and every scorer reads them.
Rows are users, columns are items (implicit's convention).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.errors import ValidationFailed

#: Columns of :attr:`InteractionDataset.interactions`.
INTERACTION_COLUMNS = ("user", "item", "type", "timestamp", "value", "weight")
#: Rows hashed at a time by :meth:`InteractionDataset.fingerprint`.
FINGERPRINT_ROWS = 1_000_000


def lookup_codes(index: Mapping[str, int], ids: Iterable[str]) -> np.ndarray:
    """The code of each id in ``index`` (a vocabulary), -1 for an id it lacks."""
    ids = ids if isinstance(ids, list | tuple | np.ndarray) else list(ids)
    get = index.get
    return np.fromiter((get(i, -1) for i in ids), dtype=np.int64, count=len(ids))


@dataclass
class InteractionDataset:
    """Users x items interactions with the vocabularies that give codes their meaning.

    ``interactions`` holds one row per event with integer ``user``/``item`` codes,
    ``timestamp`` in UNIX seconds and the implicit-feedback ``weight`` of its type.
    ``matrix`` sums the weights per (user, item), negative totals clipped to zero.
    A ``session`` column is there when the events had session ids: an int32 session
    number per event (see :func:`session_numbers`), -1 where an event had none.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    interactions: pd.DataFrame
    catalog: Catalog = field(default_factory=Catalog.empty)
    user_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)
    _matrix: sp.csr_matrix | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {t: i for i, t in enumerate(self.item_ids)}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def matrix(self) -> sp.csr_matrix:
        """Users x items CSR matrix of summed positive weights (float32)."""
        if self._matrix is None:
            inter = self.interactions
            coo = sp.coo_matrix(
                (inter["weight"].to_numpy(np.float32),
                 (inter["user"].to_numpy(), inter["item"].to_numpy())),
                shape=(self.n_users, self.n_items),
            )
            mat = coo.tocsr()
            mat.sum_duplicates()
            mat.data = np.clip(mat.data, 0, None)
            mat.eliminate_zeros()
            self._matrix = mat
        return self._matrix

    def user_codes(self, user_ids: Iterable[str]) -> np.ndarray:
        return lookup_codes(self.user_index, user_ids)

    def item_codes(self, item_ids: Iterable[str]) -> np.ndarray:
        return lookup_codes(self.item_index, item_ids)

    def user_items(self, user_id: str) -> np.ndarray:
        """Item codes the user interacted with positively in the training data."""
        code = self.user_index.get(user_id)
        if code is None:
            return np.array([], dtype=np.int32)
        m = self.matrix
        return m.indices[m.indptr[code] : m.indptr[code + 1]]

    def fingerprint(self) -> str:
        """sha256 of the vocabularies and interactions: which data a run was fit on.

        Hashed a slice of rows at a time in fixed dtypes (int64 codes, float64 times,
        float32 weights, type names joined by ``\\x1f``), so the digest neither depends
        on the columns' dtypes nor needs a string per event in memory at once.
        """
        digest = hashlib.sha256()
        for ids in (self.user_ids, self.item_ids):
            digest.update("\x1f".join(map(str, ids)).encode("utf-8", "surrogatepass"))
            digest.update(b"\x1e")
        inter = self.interactions
        n = len(inter)
        for column, dtype in (("user", np.int64), ("item", np.int64),
                              ("timestamp", np.float64), ("weight", np.float32)):
            values = inter[column].to_numpy()
            for start in range(0, n, FINGERPRINT_ROWS):
                digest.update(np.ascontiguousarray(
                    values[start : start + FINGERPRINT_ROWS], dtype=dtype).tobytes())
        types = inter["type"]
        for start in range(0, n, FINGERPRINT_ROWS):
            part = "\x1f".join(map(str, types.iloc[start : start + FINGERPRINT_ROWS]))
            digest.update((("\x1f" if start else "") + part).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def vocabulary_state(self) -> dict[str, np.ndarray]:
        """The vocabularies as string arrays, for saving beside the model artifacts."""
        return {"user_ids": self.user_ids.astype(str), "item_ids": self.item_ids.astype(str)}

    @classmethod
    def from_vocabulary(
        cls, state: Mapping[str, np.ndarray], catalog: Catalog | None = None
    ) -> InteractionDataset:
        """A dataset with the saved vocabularies and no interactions (for loading)."""
        return cls(
            user_ids=np.asarray(state["user_ids"]).astype(object),
            item_ids=np.asarray(state["item_ids"]).astype(object),
            interactions=pd.DataFrame({c: [] for c in INTERACTION_COLUMNS}),
            catalog=catalog or Catalog.empty(),
        )

    @classmethod
    def from_frame(
        cls,
        events: pd.DataFrame,
        catalog: Catalog | None = None,
        event_weights: Mapping[str, float] | None = None,
        default_type: str = "interaction",
    ) -> InteractionDataset:
        """Build from a frame with ``user_id``, ``item_id`` and optional ``type``,
        ``timestamp``, ``value`` and ``session_id`` columns (``user``/``item`` are
        accepted too).

        Items of ``catalog`` that nobody touched are part of the item vocabulary, so
        content-based plugins can score them.
        """
        frame = events.rename(columns={"user": "user_id", "item": "item_id"})
        missing = {"user_id", "item_id"} - set(frame.columns)
        if missing:
            raise ValidationFailed(
                {"columns": [f"missing column(s) {sorted(missing)}; got {list(events.columns)}"]},
                "interactions",
            )
        catalog = catalog or Catalog.empty()
        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        weights.setdefault(default_type, 1.0)
        users = frame["user_id"].astype(str)
        items = frame["item_id"].astype(str)
        types = (frame["type"].astype(str) if "type" in frame
                 else pd.Series(default_type, index=frame.index))
        if "timestamp" in frame:
            ts = frame["timestamp"]
            if pd.api.types.is_datetime64_any_dtype(ts):
                # not astype("int64"): its unit follows the column's resolution (ns, us...)
                seconds = (pd.to_datetime(ts, utc=True)
                           - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            else:
                seconds = pd.to_numeric(ts, errors="coerce")
        else:
            seconds = pd.Series(np.arange(len(frame), dtype=float), index=frame.index)
        value = (pd.to_numeric(frame["value"], errors="coerce") if "value" in frame
                 else pd.Series(np.nan, index=frame.index))
        user_ids = np.array(sorted(set(users)), dtype=object)
        item_vocab = set(items) | {str(i) for i in catalog.ids}
        item_ids = np.array(sorted(item_vocab), dtype=object)
        user_index = {u: i for i, u in enumerate(user_ids)}
        item_index = {t: i for i, t in enumerate(item_ids)}
        inter = pd.DataFrame({
            "user": users.map(user_index).to_numpy(np.int32),
            "item": items.map(item_index).to_numpy(np.int32),
            "type": pd.Categorical(types.to_numpy()),
            "timestamp": seconds.to_numpy(float),
            "value": value.to_numpy(np.float32),
            "weight": types.map(weights).fillna(1.0).to_numpy(np.float32),
        })
        if "session_id" in frame:  # basket and session models group by it
            inter["session"] = session_numbers(frame["session_id"].to_numpy(object))
        return cls(user_ids=user_ids, item_ids=item_ids, interactions=inter, catalog=catalog)

    @classmethod
    def from_event_chunks(
        cls,
        chunks: Iterable[pd.DataFrame],
        catalog: Catalog | None = None,
        event_weights: Mapping[str, float] | None = None,
    ) -> InteractionDataset:
        """Build from :meth:`recsdk.storage.store.Store.iter_event_columns` chunks: the
        dataset :meth:`from_frame` builds from :meth:`~recsdk.storage.store.Store.events_frame`,
        without holding every event's strings at once.

        Each chunk's ids become int32 codes as it arrives (a chunk's distinct ids are
        looked up once, not each event), so memory is the per-event arrays (about 30
        bytes an event) and the user and item vocabularies. Session ids, of which there
        can be tens of millions, are never kept as strings: each becomes a 64-bit hash
        as it arrives and a session number at the end (:func:`session_numbers`). Chunks
        must come in row-id order; events end up ordered by time, then row id, as
        :meth:`~recsdk.storage.store.Store.events_frame` orders them.
        """
        catalog = catalog or Catalog.empty()
        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        users, items, types = (_Vocabulary() for _ in range(3))
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("user", "item", "type", "session", "micros", "value")}
        for chunk in chunks:
            missing = set(EVENT_CHUNK_COLUMNS) - set(chunk.columns)
            if missing:
                raise ValidationFailed(
                    {"columns": [f"missing column(s) {sorted(missing)}; got "
                                 f"{list(chunk.columns)}"]}, "event chunk")
            parts["user"].append(users.encode(chunk["user_id"].to_numpy()))
            parts["item"].append(items.encode(chunk["item_id"].to_numpy()))
            parts["type"].append(types.encode(chunk["type"].to_numpy()))
            parts["session"].append(_session_hashes(chunk["session_id"].to_numpy(object)))
            parts["micros"].append(chunk["micros"].to_numpy(np.int64))
            parts["value"].append(chunk["value"].to_numpy(np.float32))
        for item_id in catalog.ids:
            items.add(str(item_id))
        micros = _concat(parts.pop("micros"), np.int64)
        order = np.argsort(micros, kind="stable")  # chunks are in row-id order
        seconds = micros[order] / 1e6
        del micros

        def column(name: str, dtype: type) -> np.ndarray:
            return _concat(parts.pop(name), dtype)[order]

        user_ids, user_rank = users.sorted()
        item_ids, item_rank = items.sorted()
        type_names, type_rank = types.sorted()
        type_codes = type_rank[column("type", np.int32)]
        type_weight = np.array([weights.get(t, 1.0) for t in type_names], dtype=np.float32)
        inter = pd.DataFrame({
            "user": user_rank[column("user", np.int32)],
            "item": item_rank[column("item", np.int32)],
            "type": pd.Categorical.from_codes(type_codes, categories=pd.Index(type_names)),
            "timestamp": seconds,
            "value": column("value", np.float32),
            "weight": type_weight[type_codes] if len(type_names) else
                np.zeros(len(type_codes), np.float32),
            "session": _numbered(column("session", np.uint64)),
        }, copy=False)  # the columns are fresh: no second copy of every event
        return cls(user_ids=user_ids, item_ids=item_ids, interactions=inter, catalog=catalog)


#: Columns :meth:`InteractionDataset.from_event_chunks` reads from each chunk.
EVENT_CHUNK_COLUMNS = ("user_id", "session_id", "item_id", "type", "micros", "value")


def session_numbers(session_ids: np.ndarray) -> np.ndarray:
    """Number sessions in order of first appearance (int32); -1 where an event has no
    session (missing or empty id).

    Numbers, not names: a model groups events by session and never needs the id
    itself, and tens of millions of id strings would cost gigabytes to keep.
    """
    return _numbered(_session_hashes(session_ids))


def _session_hashes(session_ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each session id (uint64; 0 where it has none), computed in C
    with no per-id Python object kept. Two of 20 million ids share a hash with
    probability about 1e-5; such a pair would be counted as one session."""
    ids = np.asarray(session_ids, dtype=object)
    missing = pd.isna(ids)
    missing |= ids == ""
    hashes = pd.util.hash_array(np.where(missing, "", ids), categorize=False)
    hashes[missing] = 0
    return hashes


def _numbered(hashes: np.ndarray) -> np.ndarray:
    """First-appearance numbers of session hashes (int32), -1 for hash 0 (none)."""
    codes, uniques = pd.factorize(hashes)
    none = np.flatnonzero(uniques == 0)
    if len(none):  # the "no session" code becomes -1; codes after it move down one
        gap = int(none[0])
        codes[codes == gap] = -1
        codes[codes > gap] -= 1
    return codes.astype(np.int32)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


class _Vocabulary:
    """Ids in order of first sight, coding each chunk of ids as it is read.

    A chunk is factorised in C and only its distinct ids pass through the dict, so a
    chunk costs its length plus its distinct ids, not a dict lookup per event.
    Missing ids (None, NaN) get code -1.
    """

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def add(self, value: str) -> None:
        self.index.setdefault(value, len(self.index))

    def encode(self, values: np.ndarray) -> np.ndarray:
        local, uniques = pd.factorize(values, use_na_sentinel=True)
        index = self.index
        lookup = np.fromiter((index.setdefault(str(u), len(index)) for u in uniques),
                             dtype=np.int32, count=len(uniques))
        return np.append(lookup, np.int32(-1))[local]  # -1 (missing) stays -1

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """The ids sorted (as ``sorted`` orders strings) and, for each first-sight code,
        its sorted code; index -1 maps -1 (missing) to -1."""
        ids = np.array(list(self.index), dtype=object)
        order = np.argsort(ids, kind="stable") if len(ids) else np.empty(0, np.intp)
        rank = np.empty(len(ids) + 1, dtype=np.int32)
        rank[order] = np.arange(len(ids), dtype=np.int32)
        rank[-1] = -1
        return ids[order], rank
