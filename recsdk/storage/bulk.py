"""Encode a frame of events for the bulk write paths, column by column, never row by row.

Import cost per event must not depend on Python work per value: a 100,000-row chunk
formatted by pandas (``strftime`` then ``to_csv``) cost about 2 s of client time, more
than PostgreSQL spent storing it. Here text columns are factorised (each distinct id is
encoded once) and every row-sized step is a numpy operation:

* :func:`pg_binary_copy` builds PostgreSQL's binary ``COPY`` stream (the server parses
  no text either: timestamps go as microseconds since 2000-01-01);
* :func:`sqlite_rows` builds the tuples for SQLite's ``executemany``, timestamps as
  the text SQLAlchemy's SQLite DateTime stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Binary COPY header: signature, flags (no OIDs), header-extension length.
PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
PG_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
#: PostgreSQL's timestamp epoch in microseconds since the UNIX epoch.
PG_EPOCH_US = 946_684_800_000_000
TEXT, TIMESTAMP, FLOAT = "text", "timestamp", "float"


def utc_microseconds(values: pd.Series) -> np.ndarray:
    """Microseconds since the UNIX epoch (int64) of timestamps (aware, naive = UTC, or
    text that pandas parses)."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def _factorised(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 for missing) and the distinct values as text."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = np.asarray(uniques, dtype=object).tolist()  # not pandas' per-element access
    return (np.asarray(codes, dtype=np.int64),
            [u if isinstance(u, str) else str(u) for u in texts])


def _text_field(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A text column as (lengths with -1 for NULL, byte pool, each row's start in it)."""
    codes, uniques = _factorised(values)
    encoded = [u.encode("utf-8") for u in uniques]
    sizes = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    if not encoded:  # every value missing
        return np.full(len(codes), -1, dtype=np.int64), pool, np.zeros(len(codes), np.int64)
    present = codes >= 0
    safe = np.where(present, codes, 0)
    return (np.where(present, sizes[safe], -1), pool,
            np.where(present, starts[:-1][safe], 0))


def pg_binary_copy(frame: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> bytes:
    """The binary COPY stream (header, rows, trailer) of ``frame``'s ``columns``.

    ``columns`` are ``(name, kind)`` with kind ``text`` (varchar), ``timestamp``
    (timestamptz) or ``float`` (float8); a missing value is NULL. A column the frame
    lacks is NULL in every row.
    """
    n = len(frame)
    fields: list[tuple[str, Any]] = []
    widths = np.full(n, 2, dtype=np.int64)  # the row's field count (int16)
    for name, kind in columns:
        series = frame[name] if name in frame.columns else pd.Series([None] * n, dtype=object)
        if kind == TEXT:
            lengths, pool, starts = _text_field(series)
            fields.append((kind, (lengths, pool, starts)))
            widths += 4 + np.maximum(lengths, 0)
        elif kind == TIMESTAMP:
            micros = utc_microseconds(series) - PG_EPOCH_US
            fields.append((kind, micros))
            widths += 12
        elif kind == FLOAT:
            numbers = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64,
                                                                    na_value=np.nan)
            fields.append((kind, numbers))
            widths += np.where(np.isnan(numbers), 4, 12)
        else:
            raise ValueError(f"unknown column kind {kind!r}")
    row_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(widths, out=row_start[1:])
    body = np.zeros(int(row_start[-1]), dtype=np.uint8)
    at = row_start[:-1].copy()  # where each row's next field goes
    _put(body, at, np.full(n, len(columns), dtype=">i2"))
    at += 2
    for kind, data in fields:
        if kind == TEXT:
            lengths, pool, starts = data
            _put(body, at, lengths.astype(">i4"))
            at += 4
            _gather(body, at, lengths, pool, starts)
            at += np.maximum(lengths, 0)
        elif kind == TIMESTAMP:
            _put(body, at, np.full(n, 8, dtype=">i4"))
            _put(body, at + 4, data.astype(">i8"))
            at += 12
        else:
            missing = np.isnan(data)
            _put(body, at, np.where(missing, -1, 8).astype(">i4"))
            keep = ~missing
            _put(body, at[keep] + 4, data[keep].astype(">f8"))
            at += np.where(missing, 4, 12)
    return PG_COPY_HEADER + body.tobytes() + PG_COPY_TRAILER


def _put(body: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    """Write fixed-size big-endian ``values`` (one per row) at byte offsets ``at``."""
    width = values.dtype.itemsize
    raw = values.view(np.uint8).reshape(len(values), width)
    for k in range(width):
        body[at + k] = raw[:, k]


def _gather(body: np.ndarray, at: np.ndarray, lengths: np.ndarray, pool: np.ndarray,
            starts: np.ndarray) -> None:
    """Copy each row's text bytes (``lengths`` of them from ``pool`` at ``starts``) to
    ``body`` at ``at``, for all rows in one fancy-indexing step."""
    sizes = np.maximum(lengths, 0)
    total = int(sizes.sum())
    if not total:
        return
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    within = np.arange(total, dtype=np.int64) - offsets
    body[np.repeat(at, sizes) + within] = pool[np.repeat(starts, sizes) + within]


def sqlite_text_timestamps(micros: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's SQLite DateTime) of UTC
    microseconds, formatted by numpy."""
    iso = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    chars = iso.view(np.uint32).reshape(len(iso), -1).copy()
    chars[:, 10] = ord(" ")  # the ISO "T"
    return chars.view(iso.dtype).ravel()


def sqlite_rows(frame: pd.DataFrame, text_columns: Sequence[str], tail: int
                ) -> list[tuple[Any, ...]]:
    """Rows ``(*text_columns, timestamp text, value, None * tail)`` for executemany."""
    n = len(frame)
    columns: list[list[Any]] = []
    for name in text_columns:
        if name not in frame.columns:
            columns.append([None] * n)
            continue
        codes, uniques = _factorised(frame[name])
        table = np.array([*uniques, None], dtype=object)
        columns.append(table[codes].tolist())  # code -1 takes the trailing None
    stamps = sqlite_text_timestamps(utc_microseconds(frame["timestamp"])).tolist()
    if "value" in frame.columns:
        value = pd.to_numeric(frame["value"], errors="raise").to_numpy(dtype=np.float64,
                                                                       na_value=np.nan)
        values = np.where(np.isnan(value), None, value.astype(object)).tolist()
    else:
        values = [None] * n
    return list(zip(*columns, stamps, values, *([[None] * n] * tail), strict=True))
