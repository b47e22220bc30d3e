"""An ``--items`` file read as a shop catalogue, for evaluating the served pipeline.

The served pipeline reads items from its store (titles, categories, tags, prices), so
content-aware plugins there see what they would see in production only when the
items file becomes store rows: categories and items as ``recsdk import`` writes them.
Two layouts are read:

* a RecBole ``.item`` file, exactly as :func:`recsdk.data.loaders.load_recbole` reads
  it (title from ``movie_title``, the genres as tags and a ``movies`` category tree);
* a CSV/TSV with an ``item`` column and any of ``title, description, tags, price,
  original_price, stock, active, image_url``; the category column (``category``
  unless named) gives a flat category tree, an item's first category being its own;
  tags are ``|``-separated (or a JSON list; space-separated in a RecBole
  ``token_seq`` column); every other column is kept in the item's ``attributes``.

A row the catalogue checks would skip (a malformed price, an invalid id...) is an
error here: an evaluation that silently lost items would score the wrong catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsdk.data.catalog_checks import check_categories, check_items
from recsdk.data.frames import ShopData
from recsdk.data.loaders import load_recbole_items
from recsdk.data.report import CleaningReport
from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import items_from_frame, read_frame

#: Item fields of the store that a catalogue file may fill directly.
ITEM_FIELDS = ("title", "description", "tags", "price", "original_price", "stock", "active",
               "image_url")


@dataclass(frozen=True)
class EvaluationCatalogue:
    """Store rows for the catalogue, and each item's categories for the metrics.

    ``item_categories`` has ``item`` and ``categories`` (a list): the genres of a
    RecBole file (lower-cased, as its tags), or every value of the category column.
    """

    data: ShopData
    item_categories: pd.DataFrame

    @property
    def item_ids(self) -> list[str]:
        return [str(i) for i in self.data.items["id"]]


def read_catalogue(path: str | Path, category_column: str = "category") -> EvaluationCatalogue:
    """Read ``path`` (see the module docstring); an empty file or a bad row is an error."""
    path = Path(path)
    if path.suffix.lower() == ".item":
        data = load_recbole_items(path)
        for table in ("categories", "items"):
            if table in data.report.tables:
                _refuse_skipped(data.report.tables[table], path)
        items = data.items
        categories = items["tags"] if "tags" in items else pd.Series([[]] * len(items))
        catalogue = EvaluationCatalogue(data, pd.DataFrame({
            "item": items["id"].astype(str).to_numpy(dtype=object),
            "categories": [list(c) if isinstance(c, list) else [] for c in categories]}))
    else:
        catalogue = _generic_catalogue(read_frame(path), category_column, path)
    if catalogue.data.items.empty:
        raise ValidationFailed({"rows": ["no items (the file has a header only)"]}, str(path))
    return catalogue


def _generic_catalogue(frame: pd.DataFrame, category_column: str,
                       path: Path) -> EvaluationCatalogue:
    """Store rows from an ``item[,category][,title...]`` table (see the module docstring)."""
    if category_column not in frame.columns:
        frame[category_column] = np.nan  # no categories: every item without one
    items = items_from_frame(frame, category_column).drop(columns=[category_column])
    first = [c[0] if c else None for c in items["categories"]]
    names = sorted({str(c) for cs in items["categories"] for c in cs})
    categories, report = check_categories(pd.DataFrame(
        {"id": names, "name": names, "parent_id": [None] * len(names)}))
    _refuse_skipped(report, path)
    rows = pd.DataFrame({"id": items["item"].astype(str).to_numpy(dtype=object),
                         "category_id": pd.Series(first, dtype=object)})
    for column in ITEM_FIELDS:
        if column in items.columns:
            rows[column] = items[column].to_numpy(dtype=object)
    if "tags" in rows and frame.attrs.get("field_types", {}).get("tags") == "token_seq":
        rows["tags"] = [t.split() if isinstance(t, str) else t for t in rows["tags"]]
    rest = [c for c in items.columns if c not in {"item", "categories", *ITEM_FIELDS}]
    if "attributes" in rest and len(rest) > 1:
        raise ValidationFailed({"columns": [
            f"an attributes column beside other columns {sorted(set(rest) - {'attributes'})}: "
            "keep one of them (other columns become the attributes)"]}, str(path))
    if rest == ["attributes"]:
        rows["attributes"] = items["attributes"].to_numpy(dtype=object)
    elif rest:
        rows["attributes"] = _attributes(items[rest])
    checked, report = check_items(rows, category_ids=categories["id"])
    _refuse_skipped(report, path)
    item_categories = pd.DataFrame({"item": rows["id"], "categories": items["categories"]})
    return EvaluationCatalogue(ShopData(categories=categories, items=checked), item_categories)


def _attributes(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row's non-empty cells as a dict (what ``recsdk import`` keeps as attributes)."""
    records = frame.astype(object).to_dict("records")
    return [{k: v for k, v in r.items() if not (v is None or v == "" or
                                                 (isinstance(v, float) and np.isnan(v)))}
            for r in records]


def _refuse_skipped(report: CleaningReport, path: Path) -> None:
    if report.dropped_rows:
        raise ValidationFailed({report.what: [report.format()]}, str(path))
