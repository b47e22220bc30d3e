"""Read a tabular file (CSV, TSV, JSONL or a RecBole atomic file) into a frame.

The format comes from the extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``; RecBole's
``.inter``, ``.item``, ``.user`` are tab-separated) or, failing that, is sniffed from the
first line. RecBole's typed headers (``user_id:token``) are reduced to the names, and
the types are kept in ``frame.attrs["field_types"]``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from recsdk.errors import ValidationFailed

RECBOLE_SUFFIXES = {".inter", ".item", ".user", ".kg", ".link", ".net"}
RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}
EMPTY_FILE = "the file is empty: there is nothing to import"


def detect_format(path: Path) -> str:
    """``csv``, ``tsv`` or ``jsonl``, from the extension or the first line."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix == ".tsv" or suffix in RECBOLE_SUFFIXES:
        return "tsv"
    if suffix == ".csv":
        return "csv"
    with path.open(encoding="utf-8", newline="") as fh:
        first = fh.readline()
    if first.lstrip().startswith("{"):
        return "jsonl"
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",\t;")
    except csv.Error:
        return "csv"
    return "tsv" if dialect.delimiter == "\t" else "csv"


def is_recbole_header(columns: list[str]) -> bool:
    """True when every column reads ``name:type`` with a RecBole type."""
    return bool(columns) and all(
        ":" in c and c.rsplit(":", 1)[1] in RECBOLE_TYPES for c in columns
    )


def read_table(path: str | Path, *, dtype: type | None = str) -> pd.DataFrame:
    """Read ``path`` with its header; every column as text unless ``dtype`` is None."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValidationFailed(
                        {f"line {lineno}": [f"not valid JSON: {exc.msg}"]}, str(path)) from exc
                if not isinstance(row, dict):
                    raise ValidationFailed(
                        {f"line {lineno}": ["expected a JSON object"]}, str(path))
                rows.append(row)
        frame = pd.DataFrame(rows)
        if dtype is not None:  # scalars as text; nested objects stay dicts and lists
            frame = frame.astype(object).map(
                lambda v: v if v is None or isinstance(v, dict | list)
                or (isinstance(v, float) and v != v) else str(v))
        frame.attrs["field_types"] = {}
        return frame
    sep = "\t" if fmt == "tsv" else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=dtype, keep_default_na=False,
                            na_values=[""], quoting=csv.QUOTE_NONE if sep == "\t" else 0)
    except pd.errors.EmptyDataError as exc:
        raise ValidationFailed({"file": [EMPTY_FILE]}, str(path)) from exc
    except pd.errors.ParserError as exc:
        raise ValidationFailed({"file": [str(exc)]}, str(path)) from exc
    columns = [str(c) for c in frame.columns]
    types: dict[str, str] = {}
    if is_recbole_header(columns):
        names = [c.rsplit(":", 1)[0] for c in columns]
        types = dict(zip(names, (c.rsplit(":", 1)[1] for c in columns), strict=True))
        frame.columns = names
    frame.attrs["field_types"] = types
    return frame
