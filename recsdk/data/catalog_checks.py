"""Catalogue validation before a bulk import: categories, items and users.

Each rule either skips the row and reports it, or refuses the whole table with a
:class:`~recsdk.errors.ValidationFailed` naming the rows, chosen by what the problem
most likely means:

* a row that cannot be read (no id, a price that is not a number, tags or attributes
  that are not a list / an object) is **skipped** and reported: the rest is usable;
* a negative price, original price or stock, a parent or item category that does not
  exist, a category cycle or a chain deeper than ``rules.MAX_CATEGORY_DEPTH`` is an
  **error**: it usually means a wrong column mapping or an incomplete export, and
  importing around it would give a wrong catalogue;
* texts, tags and attributes follow :mod:`recsdk.rules` as the API does (lengths, no
  NUL characters or unpaired surrogates, attributes at most ``MAX_JSON_DEPTH`` deep,
  a typed ``group_id``); a row that breaks them is skipped and reported;
* a repeated id keeps the last row (as an upsert would), reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsdk import rules
from recsdk.data.report import CleaningReport
from recsdk.data.validation import check_ids
from recsdk.errors import ValidationFailed
from recsdk.rules import ID_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, RuleError

ATTRIBUTES_REASON = (f"attributes are not a JSON object of at most {rules.MAX_JSON_DEPTH} "
                     "levels (text keys, finite numbers, no NUL characters, group_id text "
                     "or a number): row skipped")
TRUE_TEXT = {"true", "1", "yes", "y", "t"}
FALSE_TEXT = {"false", "0", "no", "n", "f"}


class _Table:
    """A table being checked: the frame, its report and the rows still kept."""

    def __init__(self, frame: pd.DataFrame, what: str, examples: int) -> None:
        self.frame = frame.reset_index(drop=True)
        if "_row" not in self.frame.columns:
            self.frame["_row"] = np.arange(len(self.frame))
        self.report = CleaningReport(what, input_rows=len(self.frame))
        self.keep = np.ones(len(self.frame), dtype=bool)
        self.examples = examples
        self.columns = [c for c in self.frame.columns if c != "_row"][:6]

    def skip(self, rule: str, mask: np.ndarray, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & self.keep
        self.report.add(rule, "dropped", mask, reason, frame=self.frame,
                        columns=self.columns, examples=self.examples)
        self.keep &= ~mask

    def change(self, rule: str, mask: np.ndarray, reason: str) -> None:
        self.report.add(rule, "changed", np.asarray(mask, dtype=bool) & self.keep, reason,
                        frame=self.frame, columns=self.columns, examples=self.examples)

    def refuse(self, mask: np.ndarray, field: str, message: str) -> None:
        mask = np.asarray(mask, dtype=bool) & self.keep
        if mask.any():
            rows = self.frame["_row"].to_numpy()[mask]
            messages: dict[Any, Any] = {int(r): {field: [message]} for r in rows[:20]}
            if len(rows) > 20:
                messages["_more"] = [f"{len(rows) - 20} more rows like these"]
            raise ValidationFailed(messages, self.report.what)

    def ids(self) -> None:
        """Rows need a valid id; a repeated id keeps its last row."""
        checked = check_ids(self.frame["id"], "id", required=True)
        self.frame["id"] = checked.values
        self.skip("missing_id", checked.problems["missing_id"], "no id: row skipped")
        self.skip("invalid_id", checked.problems["invalid_id"],
                  f"id is not text of 1 to {ID_LENGTH} characters: row skipped")
        repeated = np.zeros(len(self.frame), dtype=bool)
        live = np.flatnonzero(self.keep)
        repeated[live] = self.frame["id"].iloc[live].duplicated(keep="last").to_numpy()
        self.skip("duplicate_id", repeated, "id repeated further down: the last row wins")

    def done(self) -> tuple[pd.DataFrame, CleaningReport]:
        out = self.frame.loc[self.keep].drop(columns="_row").reset_index(drop=True)
        self.report.kept_rows = len(out)
        self.report.check_balance()
        return out, self.report


def check_categories(frame: pd.DataFrame, *, known: Iterable[str] = (),
                     examples: int = 5) -> tuple[pd.DataFrame, CleaningReport]:
    """Categories with ids, names and parents that exist (here or in ``known``)."""
    table = _Table(_with_columns(frame, ("id", "name", "parent_id")), "categories", examples)
    table.ids()
    f = table.frame
    names = f["name"].astype(object)
    blank = names.isna().to_numpy() | names.eq("").to_numpy()
    f["name"] = names.where(~blank, f["id"])
    table.change("name_from_id", blank, "no name: the id is used as the name")
    table.skip("invalid_name", _breaks(f["name"], lambda v: rules.text(v, "name", ID_LENGTH)),
               f"name longer than {ID_LENGTH} characters, or holding a NUL character or an "
               "unpaired surrogate: row skipped")
    parents = check_ids(f["parent_id"], "parent_id", required=False)
    f["parent_id"] = parents.values
    table.skip("invalid_parent_id", parents.problems["invalid_parent_id"],
               "parent_id is not a valid id: row skipped")
    ids = set(f.loc[table.keep, "id"]) | set(known)
    parent = f["parent_id"].astype(object)
    has_parent = parent.notna().to_numpy()
    table.refuse(has_parent & ~parent.isin(ids).to_numpy(), "parent_id",
                 "Unknown parent category: add it to the file or import it first.")
    table.refuse(has_parent & (parent == f["id"]).to_numpy(), "parent_id",
                 "A category cannot be its own parent.")
    parents = {i: (p if isinstance(p, str) else None)
               for i, p in zip(f.loc[table.keep, "id"], f.loc[table.keep, "parent_id"],
                               strict=True)}
    problems = rules.category_problems(parents, parents)
    for message in sorted(set(problems.values())):
        bad = f["id"].isin([i for i, m in problems.items() if m == message]).to_numpy()
        table.refuse(bad, "parent_id", message)
    return table.done()


def _breaks(series: pd.Series, rule: Any) -> np.ndarray:
    """Rows whose non-empty value ``rule`` refuses."""
    def refused(value: Any) -> bool:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return False
        try:
            rule(value)
        except RuleError:
            return True
        return False

    return series.astype(object).map(refused).to_numpy(dtype=bool)


def check_items(frame: pd.DataFrame, *, category_ids: Iterable[str] | None = None,
                unknown_category: Literal["error", "clear"] = "error",
                examples: int = 5) -> tuple[pd.DataFrame, CleaningReport]:
    """Items with readable fields; ``category_ids`` are the categories that exist
    (None: do not check). An unknown category is an error, or with
    ``unknown_category="clear"`` the item is kept without a category (reported)."""
    table = _Table(frame, "items", examples)
    if "id" not in table.frame.columns:
        raise ValidationFailed({"columns": ["items need an id column"]}, "items")
    table.ids()
    f = table.frame
    for column in ("price", "original_price"):
        if column in f.columns:
            number, malformed = _numbers(f[column])
            table.skip(f"malformed_{column}", malformed,
                       f"{column} is not a finite number: row skipped")
            table.refuse(number < 0, column, f"{column.replace('_', ' ').capitalize()} "
                         "must not be negative.")
            f[column] = number
    if {"price", "original_price"} <= set(f.columns):
        below = (f["original_price"] < f["price"]).to_numpy()
        table.report.add("original_below_price", "kept", below & table.keep,
                         "original_price below price (a discount the other way): kept",
                         frame=f, columns=("id", "price", "original_price"))
    if "stock" in f.columns:
        number, malformed = _numbers(f["stock"])
        fractional = ~np.isnan(number) & (number != np.round(number))
        table.skip("malformed_stock", malformed | fractional | (number > rules.MAX_STOCK),
                   f"stock is not a whole number up to {rules.MAX_STOCK}: row skipped")
        table.refuse(number < 0, "stock", "Stock must not be negative.")
        f["stock"] = pd.array([None if np.isnan(x) else int(x) for x in number],
                              dtype="Int64")
    if "active" in f.columns:
        active, malformed = _booleans(f["active"])
        table.skip("malformed_active", malformed,
                   "active is not true/false (or 1/0, yes/no): row skipped")
        f["active"] = active
    if "tags" in f.columns:
        tags, malformed = _lists(f["tags"])
        table.skip("malformed_tags", malformed, "tags are not a list of text (or text "
                   f"separated by '|') of at most {MAX_TAG_LENGTH} characters each: row "
                   "skipped")
        f["tags"] = tags
    if "attributes" in f.columns:
        attributes, malformed = _objects(f["attributes"], rules.item_attributes)
        table.skip("malformed_attributes", malformed, ATTRIBUTES_REASON)
        f["attributes"] = attributes
    for column, limit in (("title", rules.MAX_TITLE_LENGTH),
                          ("description", rules.MAX_DESCRIPTION_LENGTH),
                          ("image_url", rules.MAX_URL_LENGTH)):
        if column in f.columns:
            text = f[column]
            f[column] = text.astype(object).where(text.isna(), text.astype(str))
            table.skip(f"invalid_{column}",
                       _breaks(f[column], lambda v, c=column, n=limit: rules.text(v, c, n)),
                       f"{column} longer than {limit} characters, or holding a NUL character "
                       "or an unpaired surrogate: row skipped")
    if "category_id" in f.columns:
        cats = check_ids(f["category_id"], "category_id", required=False)
        f["category_id"] = cats.values
        table.skip("invalid_category_id", cats.problems["invalid_category_id"],
                   "category_id is not a valid id: row skipped")
        if category_ids is not None:
            known = set(category_ids)
            cat = f["category_id"].astype(object)
            unknown = (cat.notna() & ~cat.isin(known)).to_numpy()
            if unknown_category == "error":
                table.refuse(unknown, "category_id", "Unknown category: import the "
                             "categories first (or use unknown_category='clear').")
            else:
                table.change("unknown_category_cleared", unknown,
                             "category not in the catalogue: item kept without category")
                f.loc[unknown, "category_id"] = np.nan
    return table.done()


def check_users(frame: pd.DataFrame, *, examples: int = 5
                ) -> tuple[pd.DataFrame, CleaningReport]:
    """Users with ids and object attributes."""
    table = _Table(_with_columns(frame, ("id",)), "users", examples)
    table.ids()
    f = table.frame
    if "attributes" in f.columns:
        attributes, malformed = _objects(
            f["attributes"], lambda v: rules.json_object(v, "attributes"))
        table.skip("malformed_attributes", malformed, ATTRIBUTES_REASON)
        f["attributes"] = attributes
    else:
        f["attributes"] = [{} for _ in range(len(f))]
    return table.done()


def _with_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out


def _numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN where empty) and the mask of cells that are not finite numbers."""
    raw = series.astype(object)
    empty = raw.isna().to_numpy() | raw.eq("").to_numpy()
    bools = raw.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    number = pd.to_numeric(raw.where(~empty & ~bools, None), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan, copy=True)
    malformed = ~empty & (bools | ~np.isfinite(number))
    number[malformed] = np.nan
    return number, malformed


def _booleans(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    def read(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            return None
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | np.integer) and v in (0, 1):
            return bool(v)
        text = str(v).strip().lower()
        return True if text in TRUE_TEXT else False if text in FALSE_TEXT else _BAD

    values = series.astype(object).map(read)
    malformed = values.map(lambda v: v is _BAD).to_numpy(dtype=bool)
    return values.where(~malformed, None).astype(object), malformed


_BAD = object()


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON value")


def _lists(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Lists of tags: a list, JSON list text, or text split on '|'; empty tags go."""
    def read(v: Any) -> Any:
        if isinstance(v, list | tuple | np.ndarray):
            items = list(v)
        elif v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        elif isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    return _BAD
                if not isinstance(items, list):
                    return _BAD
            else:
                items = text.split("|")
        else:
            return _BAD
        if not all(isinstance(t, str | int | float) for t in items):
            return _BAD
        tags = [str(t).strip() for t in items if str(t).strip()]
        try:
            for tag in tags:
                rules.text(tag, "tag", MAX_TAG_LENGTH)
        except RuleError:
            return _BAD
        return _BAD if len(tags) > MAX_TAGS else tags

    values = series.astype(object).map(read)
    malformed = values.map(lambda v: v is _BAD).to_numpy(dtype=bool)
    return values.where(~malformed, None).astype(object), malformed


def _objects(series: pd.Series, rule: Any) -> tuple[pd.Series, np.ndarray]:
    """Dicts that ``rule`` accepts: a dict or JSON object text; an empty cell is None."""
    def read(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            return None
        if isinstance(v, str):
            try:
                v = json.loads(v, parse_constant=_refuse_constant)
            except (ValueError, RecursionError):
                return _BAD
        try:
            return rule(v)
        except RuleError:
            return _BAD

    values = series.astype(object).map(read)
    malformed = values.map(lambda v: v is _BAD).to_numpy(dtype=bool)
    return values.where(~malformed, None).astype(object), malformed
