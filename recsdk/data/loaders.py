"""Loaders: public data sets and generic tables into the :class:`ShopData` layout.

Every loader reads from a path the user gives (no data ships with recsdk), checks
rows with the same rules as ingestion, and records what it skipped or changed in
``ShopData.report``; events keep a ``_row`` column with their row number in the file
(0-based, header not counted) so later reports point back to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsdk.data.catalog_checks import check_categories, check_items, check_users
from recsdk.data.frames import CATEGORY_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, ShopData
from recsdk.data.report import CleaningReport, LoadReport
from recsdk.data.tables import EMPTY_FILE, RECBOLE_SUFFIXES, detect_format, read_table
from recsdk.data.validation import EVENT_COLUMNS, drop_invalid_events
from recsdk.errors import ValidationFailed

Kind = Literal["events", "items", "users", "categories"]
#: Fields a generic table may map its columns to, per kind.
FIELDS: dict[str, tuple[str, ...]] = {
    "events": (*EVENT_COLUMNS, "context"),
    "items": ITEM_COLUMNS,
    "users": USER_COLUMNS,
    "categories": CATEGORY_COLUMNS,
}
#: Where unmapped columns go when the caller asks to keep them.
EXTRA_FIELD = {"events": "context", "items": "attributes", "users": "attributes"}
#: Header of the Women's E-Commerce Clothing Reviews CSV.
CLOTHING_COLUMNS = ("Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND",
                    "Positive Feedback Count", "Division Name", "Department Name",
                    "Class Name")
#: The clothing reviews carry no dates: events are placed from here, a second apart.
CLOTHING_EPOCH = datetime(2018, 1, 1, tzinfo=UTC)
MOVIES_ROOT = "movies"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


# ---- generic tables ----------------------------------------------------------------------


def load_table(path: str | Path, mapping: Mapping[str, str] | None = None,
               kind: Kind = "events", *, extra: Literal["error", "keep", "ignore"] = "error",
               default_type: str | None = None,
               missing_timestamp: Literal["drop", "now"] = "drop",
               now: datetime | None = None) -> ShopData:
    """Read a CSV, TSV, JSON-lines or RecBole file of one ``kind`` of rows.

    ``mapping`` renames the file's columns to recsdk fields, e.g. ``{"customer":
    "user_id", "sku": "item_id", "ts": "timestamp"}``. Columns that are neither
    fields nor mapped are an error, unless ``extra="keep"`` (they go into the event's
    ``context`` or the item's / user's ``attributes``) or ``extra="ignore"`` (they are
    left out, and the report lists them). Events without a ``type`` column take
    ``default_type``; timestamps are ISO 8601 text or UNIX seconds.
    """
    if kind not in FIELDS:
        raise ValueError(f"kind must be one of {', '.join(FIELDS)}, not {kind!r}")
    path = Path(path)
    frame = _rows_of(read_table(path, dtype=None if detect_format(path) == "jsonl" else str),
                     path)
    report = LoadReport(str(path))
    frame = _apply_mapping(frame, dict(mapping or {}), kind, extra, report)
    data = ShopData(report=report)
    if kind == "events":
        if "type" not in frame.columns:
            if default_type is None:
                raise ValidationFailed({"columns": [
                    "events need a type column: map one (e.g. action=type) or give a "
                    "default type for every row"]}, str(path))
            frame["type"] = default_type
        if "timestamp" not in frame.columns and missing_timestamp != "now":
            raise ValidationFailed({"columns": [
                "events need a timestamp column (ISO 8601 or UNIX seconds): map one, or "
                "stamp rows with the import time (missing_timestamp='now')"]}, str(path))
        data.events = _events(frame, report, now=now, missing_timestamp=missing_timestamp)
    elif kind == "items":
        data.items = _table(check_items(frame), report)
    elif kind == "users":
        data.users = _table(check_users(frame), report)
    else:
        data.categories = _table(check_categories(frame), report)
    return data


def _rows_of(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` unless the file had no rows: an empty file is a mistake, not a no-op."""
    if not len(frame.columns):
        raise ValidationFailed({"file": [EMPTY_FILE]}, str(path))
    if not len(frame):
        raise ValidationFailed({"file": [
            f"the file has a header ({', '.join(map(str, frame.columns))}) but no rows"]},
            str(path))
    return frame


def _apply_mapping(frame: pd.DataFrame, mapping: dict[str, str], kind: str, extra: str,
                   report: LoadReport) -> pd.DataFrame:
    fields = FIELDS[kind]
    columns = [str(c) for c in frame.columns]
    problems = []
    missing = [c for c in mapping if c not in columns]
    if missing:
        problems.append(f"mapping names column(s) {missing} that the file does not have; "
                        f"it has {columns}")
    wrong = sorted({v for v in mapping.values() if v not in fields})
    if wrong:
        problems.append(f"mapping targets {wrong} are not {kind} fields; fields are "
                        f"{list(fields)}")
    targets = [mapping.get(c, c) for c in columns]
    twice = sorted({t for t in targets if targets.count(t) > 1 and t in fields})
    if twice:
        problems.append(f"more than one column would become {twice}")
    if problems:
        raise ValidationFailed({"mapping": problems}, kind)
    frame = frame.rename(columns=mapping)
    unknown = [c for c in frame.columns if c not in fields]
    if unknown and extra == "error":
        into = EXTRA_FIELD.get(kind)
        hint = f", or keep them in {into} (extra='keep')" if into else ""
        raise ValidationFailed({"columns": [
            f"unknown column(s) {unknown}: map them to {kind} fields {list(fields)} "
            f"(mapping column=field){hint}, or leave them out (extra='ignore')"]}, kind)
    if unknown and extra == "keep":
        into = EXTRA_FIELD.get(kind)
        if into is None:
            raise ValidationFailed({"columns": [
                f"unknown column(s) {unknown}: categories have no place for extra "
                "columns"]}, kind)
        if into in frame.columns:
            raise ValidationFailed({"columns": [
                f"the file has a {into} column and unknown columns {unknown}: map or "
                "ignore the unknown ones"]}, kind)
        frame[into] = _pack(frame[unknown])
        frame = frame.drop(columns=unknown)
    elif unknown:
        frame = frame.drop(columns=unknown)
        report.table(kind).note("ignored_columns", "kept", len(frame),
                                f"columns {unknown} were left out (extra='ignore')")
    return frame


def _pack(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Row dicts of the given columns, empty cells left out."""
    records = frame.astype(object).to_dict("records")
    return [{k: v for k, v in r.items() if not _empty(v)} for r in records]


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def _events(frame: pd.DataFrame, report: LoadReport, *, now: datetime | None = None,
            missing_timestamp: str = "drop") -> pd.DataFrame:
    table = report.table("events")
    table.input_rows = len(frame)
    out = drop_invalid_events(frame, table, now=now, missing_timestamp=missing_timestamp)
    table.kept_rows = len(out)
    table.check_balance()
    return out


def _table(result: tuple[pd.DataFrame, CleaningReport], report: LoadReport) -> pd.DataFrame:
    frame, sub = result
    report.tables[sub.what] = sub
    return frame


# ---- RecBole atomic files (ml-100k) ---------------------------------------------------


def load_recbole(path: str | Path, *, now: datetime | None = None) -> ShopData:
    """Read RecBole atomic files: a directory, or one ``.inter`` with its siblings.

    ``.inter`` rows become events of type ``rating`` (value = the rating) when the
    file has a rating column, ``interaction`` otherwise; further columns go into the
    event's ``context``. ``.item`` gives titles (``movie_title``), genres (``class``)
    as tags, and a category tree: a root ``movies`` with one child per genre, the
    item's first genre being its category; other columns become attributes
    (``release_year`` as a number). ``.user`` columns become attributes (``age`` as a
    number, ``zip_code`` as ``zip``).
    """
    files = _recbole_files(Path(path))
    report = LoadReport(str(path))
    data = ShopData(report=report)
    if "inter" in files:
        data.events = _recbole_events(_rows_of(read_table(files["inter"]), files["inter"]),
                                      report, now)
    if "item" in files:
        data.categories, data.items = _recbole_items(
            _rows_of(read_table(files["item"]), files["item"]), report)
    if "user" in files:
        data.users = _recbole_users(_rows_of(read_table(files["user"]), files["user"]),
                                    report)
    return data


def load_recbole_items(path: str | Path) -> ShopData:
    """Only the catalogue (categories and items) of one RecBole ``.item`` file, as
    :func:`load_recbole` reads it, without its sibling ``.inter`` and ``.user`` files."""
    report = LoadReport(str(path))
    data = ShopData(report=report)
    data.categories, data.items = _recbole_items(read_table(path), report)
    return data


def _recbole_files(path: Path) -> dict[str, Path]:
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.suffix in RECBOLE_SUFFIXES)
    elif path.is_file():
        candidates = sorted(p for p in path.parent.iterdir()
                            if p.stem == path.stem and p.suffix in RECBOLE_SUFFIXES)
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    files: dict[str, Path] = {}
    for p in candidates:
        kind = p.suffix.lstrip(".")
        if kind in files:
            raise ValidationFailed({"files": [f"two .{kind} files: {files[kind].name} and "
                                              f"{p.name}; give one file's path"]}, str(path))
        if kind in ("inter", "item", "user"):
            files[kind] = p
    if not files:
        raise ValidationFailed({"files": ["no RecBole .inter, .item or .user file"]},
                               str(path))
    return files


def _field(frame: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def _recbole_events(frame: pd.DataFrame, report: LoadReport,
                    now: datetime | None) -> pd.DataFrame:
    user = _field(frame, "user_id")
    item = _field(frame, "item_id")
    if user is None or item is None:
        raise ValidationFailed({"columns": [f".inter needs user_id and item_id; it has "
                                            f"{list(frame.columns)}"]}, "events")
    rating = _field(frame, "rating")
    stamp = _field(frame, "timestamp")
    events = pd.DataFrame({
        "user_id": frame[user], "item_id": frame[item],
        "type": "rating" if rating else "interaction",
        "timestamp": frame[stamp] if stamp else None,
        "value": frame[rating] if rating else None,
    })
    rest = [c for c in frame.columns if c not in {user, item, rating, stamp}]
    if rest:
        events["context"] = _pack(frame[rest])
    return _events(events, report, now=now)


def _genres(text: Any) -> list[str]:
    return [] if _empty(text) else str(text).split()


def _recbole_items(frame: pd.DataFrame, report: LoadReport
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    item = _field(frame, "item_id")
    if item is None:
        raise ValidationFailed({"columns": [".item needs an item_id column"]}, "items")
    title = _field(frame, "movie_title", "title", "name")
    genre = _field(frame, "class", "genre", "genres", "categories")
    genres = frame[genre].map(_genres) if genre else pd.Series([[]] * len(frame))
    names = sorted({g for gs in genres for g in gs})
    categories = pd.DataFrame(
        [(MOVIES_ROOT, "Movies", None)]
        + [(f"{MOVIES_ROOT}/{slug(g)}", g, MOVIES_ROOT) for g in names],
        columns=list(CATEGORY_COLUMNS))
    rest = [c for c in frame.columns if c not in {item, title, genre}]
    attributes = _pack(frame[rest])
    for attrs in attributes:
        year = attrs.get("release_year")
        if isinstance(year, str) and year.isdigit():
            attrs["release_year"] = int(year)
    items = pd.DataFrame({
        "id": frame[item],
        "title": frame[title].fillna("") if title else "",
        "category_id": genres.map(lambda gs: f"{MOVIES_ROOT}/{slug(gs[0])}" if gs else None),
        "tags": genres.map(lambda gs: [g.lower() for g in gs]),
        "attributes": attributes,
    })
    categories = _table(check_categories(categories), report)
    items = _table(check_items(items, category_ids=categories["id"]), report)
    return categories, items


def _recbole_users(frame: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    user = _field(frame, "user_id")
    if user is None:
        raise ValidationFailed({"columns": [".user needs a user_id column"]}, "users")
    rest = frame.drop(columns=[user]).rename(columns={"zip_code": "zip"})
    attributes = _pack(rest)
    for attrs in attributes:
        age = attrs.get("age")
        if isinstance(age, str) and age.isdigit():
            attrs["age"] = int(age)
    return _table(check_users(pd.DataFrame({"id": frame[user], "attributes": attributes})),
                  report)


# ---- Women's E-Commerce Clothing Reviews --------------------------------------------------


def is_clothing_reviews(columns: Iterable[str]) -> bool:
    """True when a header is the clothing reviews one (for format detection)."""
    return set(CLOTHING_COLUMNS) <= {str(c).strip() for c in columns}


def load_clothing_reviews(path: str | Path, *, max_description_chars: int = 4_000,
                          epoch: datetime = CLOTHING_EPOCH) -> ShopData:
    """Read the clothing reviews CSV: products, a category tree, anonymous reviewers.

    * categories: Division > Department > Class (ids are slug paths, e.g.
      ``general/tops/knits``); a product's category is the Class leaf its reviews
      name most often (a few products are filed under two; the report counts them);
    * items: title = the product's most common review title (else ``Clothing <id>``),
      description = its review texts in file order, cut at a review boundary near
      ``max_description_chars``; attributes: review_count, mean_rating,
      recommended_share and the hierarchy names;
    * users: the file has no reviewer id, so every review gets its own anonymous
      user ``review-<row>`` with the reviewer's age;
    * events: one per review, type ``review`` (with text) or ``rating`` (without),
      value = the 1-5 rating, context = recommended and positive feedback count. The
      file has no dates: review ``n`` is dated ``epoch`` + n seconds, keeping the order.
    """
    path = Path(path)
    frame = _rows_of(read_table(path), path)
    frame.columns = [str(c).strip() for c in frame.columns]
    if not is_clothing_reviews(frame.columns):
        missing = sorted(set(CLOTHING_COLUMNS) - set(frame.columns))
        raise ValidationFailed({"columns": [f"not the clothing reviews file: missing "
                                            f"{missing}"]}, str(path))
    report = LoadReport(str(path))
    rows = np.arange(len(frame))
    users = pd.DataFrame({"id": [f"review-{r}" for r in rows],
                          "attributes": [{"anonymous": True, **(
                              {"age": int(a)} if isinstance(a, str) and a.isdigit() else {})}
                              for a in frame["Age"]]})
    text = frame["Review Text"]
    context = [{"recommended": r == "1", **({"positive_feedback": int(p)}
                                            if isinstance(p, str) and p.isdigit() else {})}
               for r, p in zip(frame["Recommended IND"], frame["Positive Feedback Count"],
                               strict=True)]
    events = pd.DataFrame({
        "user_id": users["id"], "item_id": frame["Clothing ID"],
        "type": np.where(text.notna() & text.astype(object).ne(""), "review", "rating"),
        "timestamp": [epoch + timedelta(seconds=int(r)) for r in rows],
        "value": frame["Rating"], "context": context,
    })
    data = ShopData(report=report)
    data.events = _events(events, report)
    data.categories, data.items = _clothing_catalog(frame, report, max_description_chars)
    data.users = _table(check_users(users), report)
    return data


def _clothing_catalog(frame: pd.DataFrame, report: LoadReport, max_chars: int
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    levels = ["Division Name", "Department Name", "Class Name"]
    named = frame.dropna(subset=levels)
    triples = named[levels].drop_duplicates()
    rows = {}
    for division, department, klass in triples.itertuples(index=False):
        d = slug(division)
        rows[d] = (d, division, None)
        rows[f"{d}/{slug(department)}"] = (f"{d}/{slug(department)}", department, d)
        leaf = f"{d}/{slug(department)}/{slug(klass)}"
        rows[leaf] = (leaf, klass, f"{d}/{slug(department)}")
    categories = pd.DataFrame(list(rows.values()), columns=list(CATEGORY_COLUMNS))
    product = frame["Clothing ID"]
    slugs = {v: slug(v) for v in pd.unique(named[levels].to_numpy().ravel())}
    leaf_of_row = (named["Division Name"].map(slugs) + "/" + named["Department Name"].map(slugs)
                   + "/" + named["Class Name"].map(slugs))
    counts = (pd.DataFrame({"id": product[named.index], "leaf": leaf_of_row})
              .value_counts().rename("n").reset_index()
              .sort_values(["id", "n", "leaf"], ascending=[True, False, True]))
    leaf = counts.drop_duplicates("id").set_index("id")["leaf"]
    split = counts.groupby("id").size()
    mixed = set(split[split > 1].index)
    by_product = frame.assign(_rating=pd.to_numeric(frame["Rating"], errors="coerce"),
                              _recommended=frame["Recommended IND"].eq("1")).groupby(
        product, sort=True)
    title = _most_common_title(frame, product)
    stats = by_product.agg(review_count=("_rating", "size"), mean_rating=("_rating", "mean"),
                           recommended_share=("_recommended", "mean"))
    texts: dict[Any, list[str]] = {}
    for pid, review in zip(product, frame["Review Text"], strict=True):
        if isinstance(review, str) and review.strip():
            texts.setdefault(pid, []).append(review.strip())
    descriptions = {pid: _join_reviews(t, max_chars) for pid, t in texts.items()}
    names = categories.set_index("id")["name"]
    items = []
    for pid, row in stats.iterrows():
        category = leaf.get(pid)
        attrs: dict[str, Any] = {
            "review_count": int(row["review_count"]),
            "mean_rating": round(float(row["mean_rating"]), 3),
            "recommended_share": round(float(row["recommended_share"]), 3),
        }
        if category is not None:
            division, department, _ = category.split("/")
            attrs.update({"division": names[division],
                          "department": names[f"{division}/{department}"],
                          "class": names[category]})
        items.append({"id": pid, "title": title.get(pid, f"Clothing {pid}"),
                      "description": descriptions.get(pid, ""), "category_id": category,
                      "tags": [], "attributes": attrs})
    items_frame = pd.DataFrame(items)
    categories = _table(check_categories(categories), report)
    items_frame = _table(check_items(items_frame, category_ids=categories["id"]), report)
    table = report.tables["items"]
    no_category = int(items_frame["category_id"].isna().sum())
    table.note("no_category", "kept", no_category,
               "no Division/Department/Class in any of the product's reviews: kept "
               "without a category")
    table.note("category_by_majority", "kept", len(mixed),
               "reviews file the product under more than one class: the most frequent "
               "one is used", [{"id": str(i)} for i in sorted(mixed)[:5]])
    return categories, items_frame


def _most_common_title(frame: pd.DataFrame, product: pd.Series) -> pd.Series:
    """Each product's most frequent non-empty review title (ties: alphabetical)."""
    titles = frame["Title"].astype(object)
    present = titles.notna().to_numpy() & titles.astype(str).str.strip().ne("").to_numpy()
    counts = (pd.DataFrame({"id": product[present], "title": titles[present]})
              .value_counts().rename("n").reset_index()
              .sort_values(["id", "n", "title"], ascending=[True, False, True]))
    return counts.drop_duplicates("id").set_index("id")["title"]


def _join_reviews(texts: list[str], max_chars: int) -> str:
    """Review texts in order, cut at a review boundary once ``max_chars`` is reached."""
    out: list[str] = []
    size = 0
    for text in texts:
        if out and size + len(text) > max_chars:
            break
        out.append(text[:max_chars])
        size += len(text) + 1
    return " ".join(out)
