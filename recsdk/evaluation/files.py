"""Read and check the files evaluation works on: interactions, recommendations, users, items.

These files are written by people and by other tools, and a silent misread gives a wrong
score that nobody notices. So every problem is an error that names the file, the line
and the field, and nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recsdk.data.tables import detect_format, read_table
from recsdk.data.validation import MESSAGES, check_types
from recsdk.errors import ValidationFailed

#: RecBole atomic files name these columns ``user_id``/``item_id``.
COLUMN_ALIASES = {"user_id": "user", "item_id": "item"}
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "type")
RECOMMENDATION_COLUMNS = ("user", "item", "rank", "score")
#: How many offending lines an error message lists before it says "and N more".
SHOWN_LINES = 5


def read_frame(path: str | Path) -> pd.DataFrame:
    """The file as text columns, RecBole's ``user_id``/``item_id`` named ``user``/``item``."""
    frame = read_table(path)
    frame = frame.rename(columns={k: v for k, v in COLUMN_ALIASES.items()
                                  if k in frame.columns and v not in frame.columns})
    frame.attrs["source"] = str(path)
    return frame.reset_index(drop=True)


def _line_numbers(source: str) -> list[int]:
    """File line number of each data row, as the reader skips blank lines and the header."""
    path = Path(source)
    with path.open(encoding="utf-8") as fh:
        filled = [n for n, line in enumerate(fh, start=1) if line.strip()]
    return filled if detect_format(path) == "jsonl" else filled[1:]


def locate(frame: pd.DataFrame, positions: Sequence[int] | np.ndarray) -> list[str]:
    """``line N`` for each row position (the header is line 1), or ``row N`` in memory."""
    source = frame.attrs.get("source")
    if source is None or not Path(source).is_file():
        return [f"row {int(p) + 1}" for p in positions]
    lines = _line_numbers(source)
    return [f"line {lines[p]}" if p < len(lines) else f"row {int(p) + 1}" for p in positions]


def _where(frame: pd.DataFrame, positions: Sequence[int] | np.ndarray) -> str:
    shown = ", ".join(locate(frame, list(positions)[:SHOWN_LINES]))
    extra = len(positions) - SHOWN_LINES
    return shown + (f" and {extra} more" if extra > 0 else "")


def _what(frame: pd.DataFrame, fallback: str) -> str:
    return frame.attrs.get("source", fallback)


def fail(frame: pd.DataFrame, what: str, field: str, positions: Sequence[int] | np.ndarray,
         problem: str) -> ValidationFailed:
    """An error naming the lines of ``positions`` and what is wrong in ``field``."""
    return ValidationFailed({field: [f"{_where(frame, positions)}: {problem}"]},
                            _what(frame, what))


def _require_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValidationFailed(
            {"columns": [f"missing column(s) {missing}; the header names {list(frame.columns)}"]},
            _what(frame, what),
        )


def _require_values(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        empty = np.flatnonzero(frame[column].isna().to_numpy())
        if len(empty):
            raise fail(frame, what, column, empty, f"empty {column}")


def _numbers(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """The column as floats; a value that is not a finite number is an error."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(raw.notna().to_numpy() & ~np.isfinite(values))
    if len(bad):
        example = raw.iloc[bad[0]]
        raise fail(frame, what, column, bad, f"{column} is not a number (e.g. {example!r})")
    return values


def _timestamps(frame: pd.DataFrame, what: str) -> np.ndarray:
    """UNIX seconds from numbers or ISO 8601 dates; anything else is an error."""
    raw = frame["timestamp"]
    seconds = np.array(pd.to_numeric(raw, errors="coerce"), dtype=float)
    need = raw.notna().to_numpy() & ~np.isfinite(seconds)
    if need.any():
        dates = pd.to_datetime(raw[need], utc=True, errors="coerce", format="ISO8601")
        parsed = dates.notna().to_numpy()
        since_epoch = dates[parsed] - pd.Timestamp(0, tz="UTC")
        seconds[np.flatnonzero(need)[parsed]] = since_epoch.dt.total_seconds().to_numpy()
        bad = np.flatnonzero(need)[~parsed]
        if len(bad):
            raise fail(frame, what, "timestamp", bad,
                       f"timestamp is neither a number nor an ISO 8601 date "
                       f"(e.g. {raw.iloc[bad[0]]!r})")
    return seconds


def check_interactions(frame: pd.DataFrame, what: str = "interactions",
                       allow_empty: bool = False) -> pd.DataFrame:
    """Validate an interactions frame and normalise it to
    ``user,item[,rating][,timestamp][,type]``.

    An event ``type`` (view, purchase...) is checked and lower-cased by the rules of
    event ingestion; only the served pipeline reads it (its configured event weights).
    """
    frame = frame.rename(columns={k: v for k, v in COLUMN_ALIASES.items()
                                  if k in frame.columns and v not in frame.columns})
    _require_columns(frame, ["user", "item"], what)
    if len(frame) == 0 and not allow_empty:
        raise ValidationFailed({"rows": ["no interactions (the file has a header only)"]},
                               _what(frame, what))
    _require_values(frame, ["user", "item"], what)
    out = pd.DataFrame({"user": frame["user"].astype(str).to_numpy(dtype=object),
                        "item": frame["item"].astype(str).to_numpy(dtype=object)})
    if "rating" in frame:
        out["rating"] = _numbers(frame, "rating", what)
    if "timestamp" in frame:
        out["timestamp"] = _timestamps(frame, what)
    if "type" in frame:
        out["type"] = _types(frame, what)
    out.attrs.update(frame.attrs)
    return out


def _types(frame: pd.DataFrame, what: str) -> np.ndarray:
    """Event types as ingestion normalises them; an empty or malformed one is an error."""
    checked, _ = check_types(frame["type"])
    for rule in ("missing_type", "invalid_type"):
        bad = np.flatnonzero(checked.problems[rule])
        if len(bad):
            raise fail(frame, what, "type", bad,
                       f"{MESSAGES[rule]} (e.g. {frame['type'].iloc[bad[0]]!r})")
    return checked.values.to_numpy(dtype=object)


def read_interactions(path: str | Path, what: str = "interactions") -> pd.DataFrame:
    """Read ``user,item[,rating][,timestamp]`` (CSV, TSV or a RecBole ``.inter`` file)."""
    return check_interactions(read_frame(path), what)


def read_truth(path: str | Path) -> pd.DataFrame:
    """The held-out interactions: each (user, item) is relevant. An empty file is an error."""
    frame = read_frame(path)
    _require_columns(frame, ["user", "item"], "truth")
    if len(frame) == 0:
        raise ValidationFailed({"rows": ["empty test set: nothing to score against"]},
                               _what(frame, "truth"))
    return check_interactions(frame, "truth")


def check_recommendations(frame: pd.DataFrame, what: str = "recommendations") -> pd.DataFrame:
    """Validate ``user,item,rank[,score]``: integer ranks from 1, no duplicate rank or item."""
    _require_columns(frame, ["user", "item", "rank"], what)
    _require_values(frame, ["user", "item", "rank"], what)
    ranks = _numbers(frame, "rank", what)
    bad = np.flatnonzero((ranks < 1) | (ranks != np.round(ranks)))
    if len(bad):
        raise fail(frame, what, "rank", bad,
                   f"rank must be a whole number from 1 (e.g. {frame['rank'].iloc[bad[0]]!r})")
    out = pd.DataFrame({
        "user": frame["user"].astype(str).to_numpy(dtype=object),
        "item": frame["item"].astype(str).to_numpy(dtype=object),
        "rank": ranks.astype(np.int64),
        "score": _numbers(frame, "score", what) if "score" in frame else np.nan,
    })
    for key, field in ((["user", "rank"], "rank"), (["user", "item"], "item")):
        repeated = np.flatnonzero(out.duplicated(key, keep=False).to_numpy())
        if len(repeated):
            first = out.iloc[repeated[0]]
            raise fail(frame, what, field, repeated,
                       f"duplicate ({', '.join(key)}) rows, e.g. user {first['user']!r} "
                       f"{field} {first[field]!r}")
    out.attrs.update(frame.attrs)
    return out


def read_recommendations(path: str | Path) -> pd.DataFrame:
    """Read ``user,item,rank[,score]`` and check it (see :func:`check_recommendations`)."""
    return check_recommendations(read_frame(path))


def check_known_users(recommendations: pd.DataFrame, truth: pd.DataFrame) -> None:
    """Recommendations for a user the truth file does not know are an error, not ignored."""
    unknown = np.flatnonzero(~recommendations["user"].isin(set(truth["user"])).to_numpy())
    if len(unknown):
        users = recommendations["user"].iloc[unknown].unique()
        raise fail(recommendations, "recommendations", "user", unknown,
                   f"{len(users)} user(s) not in the truth file, e.g. {users[0]!r}")


def read_users(path: str | Path) -> list[str]:
    """User ids from a file with a ``user`` (or ``user_id``) column, in file order."""
    frame = read_frame(path)
    _require_columns(frame, ["user"], "users")
    _require_values(frame, ["user"], "users")
    if len(frame) == 0:
        raise ValidationFailed({"rows": ["no users listed"]}, _what(frame, "users"))
    return list(dict.fromkeys(frame["user"].astype(str)))


def read_items(path: str | Path, category_column: str = "category") -> pd.DataFrame:
    """One row per item: every column of the file, plus ``categories`` (a list).

    A RecBole ``token_seq`` category column holds several space-separated categories;
    any other column holds one, and an item on several rows collects them all. The other
    columns (title, description, price...) are kept for content-based plugins.
    """
    return items_from_frame(read_frame(path), category_column)


def items_from_frame(frame: pd.DataFrame, category_column: str = "category") -> pd.DataFrame:
    """:func:`read_items` on a frame already read (see :func:`read_frame`)."""
    _require_columns(frame, ["item", category_column], "items")
    _require_values(frame, ["item"], "items")
    frame["item"] = frame["item"].astype(str)
    categories = frame[category_column]
    if frame.attrs.get("field_types", {}).get(category_column) == "token_seq":
        categories = categories.str.split()
    pairs = pd.DataFrame({"item": frame["item"], "category": categories})
    pairs = pairs.explode("category").dropna(subset=["category"]).drop_duplicates()
    grouped = pairs.groupby("item", sort=False)["category"].agg(list)
    out = frame.drop_duplicates("item").reset_index(drop=True)
    out["categories"] = [grouped.get(i, []) for i in out["item"]]
    out.attrs.update(frame.attrs)
    return out


def item_categories(items: pd.DataFrame) -> pd.DataFrame:
    """``item,category`` pairs from a :func:`read_items` frame or a plain ``item,category`` one."""
    if "categories" in items:
        pairs = items[["item", "categories"]].explode("categories")
        pairs = pairs.rename(columns={"categories": "category"})
    else:
        pairs = items[["item", "category"]]
    pairs = pairs.dropna(subset=["category"])
    return pd.DataFrame({"item": pairs["item"].astype(str).to_numpy(dtype=object),
                         "category": pairs["category"].astype(str).to_numpy(dtype=object)})


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors from an ``.npz`` with ``item_ids`` (strings) and ``vectors`` (2-D)."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("item_ids", "vectors") if k not in data.files]
        if missing:
            raise ValidationFailed({"arrays": [f"missing array(s) {missing}; "
                                               f"found {sorted(data.files)}"]}, str(path))
        ids, vectors = data["item_ids"].astype(str), np.asarray(data["vectors"], dtype=float)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValidationFailed({"vectors": [f"expected {len(ids)} rows of vectors, "
                                            f"got shape {vectors.shape}"]}, str(path))
    return ids, vectors


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """CSV, or TSV when the name ends in ``.tsv``; the header names the columns.

    Whole-number float columns (timestamps, ratings) are written without a ``.0``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_float_dtype(values):
            finite = values.dropna()
            if len(finite) and (finite == np.round(finite)).all() and finite.abs().max() < 2**53:
                out[column] = values.astype("Int64")  # 881250949, not 881250949.0
    out.to_csv(path, sep=sep, index=False)
