"""A second catalogue: the Women's E-Commerce Clothing Reviews file, made sellable.

recsdk's loader (:func:`recsdk.data.loaders.load_clothing_reviews`) turns the file into
products under a Division > Department > Class tree, with their reviews as anonymous
rating and review events. The file has no prices and no stock, so the shop draws them
here (seeded): a median price per class, each product around it, a share of them
discounted, stock from a Poisson law with some sold out. The tree goes under one root
category so that it sits beside the synthetic departments. The file is read where it
lies (``DEMO_SHOP_CLOTHING_CSV``); nothing of it is copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from demo_shop.loading import image_path
from recsdk.data.frames import ShopData
from recsdk.data.loaders import load_clothing_reviews

ROOT_ID = "clothing-reviews"
ROOT_NAME = "Clothing (reviews data)"
DISCOUNT_SHARE = 0.25
OUT_OF_STOCK_SHARE = 0.08


def clothing_catalogue(path: str | Path, seed: int) -> ShopData:
    """The clothing catalogue with prices, discounts, stock and images; its events are
    the file's ratings and reviews. A missing or foreign file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the clothing reviews file {path} does not exist (give the "
                                "path of reviews.csv, e.g. ../shared/data/"
                                "womens-clothing-reviews/reviews.csv)")
    data = load_clothing_reviews(path)
    rng = np.random.default_rng([seed, 1])
    items = data.items.copy()
    leaf = items["category_id"].fillna(ROOT_ID)
    classes = sorted(pd.unique(leaf))
    median = dict(zip(classes, np.exp(rng.uniform(np.log(25.0), np.log(150.0),
                                                  len(classes))), strict=True))
    n = len(items)
    price = np.round(leaf.map(median).to_numpy(float) * rng.lognormal(0.0, 0.25, n), 2)
    discounted = rng.random(n) < DISCOUNT_SHARE
    original = np.where(discounted, np.round(price / (1 - rng.uniform(0.1, 0.4, n)), 2),
                        np.nan)
    stock = rng.poisson(20, n)
    stock[rng.random(n) < OUT_OF_STOCK_SHARE] = 0
    items["title"] = [_title(t, a) for t, a in zip(items["title"], items["attributes"],
                                                   strict=True)]
    items["category_id"] = leaf
    items["price"], items["original_price"], items["stock"] = price, original, stock
    items["active"] = True
    items["image_url"] = [image_path(str(i)) for i in items["id"]]
    categories = data.categories.copy()
    categories.loc[categories["parent_id"].isna(), "parent_id"] = ROOT_ID
    root = pd.DataFrame([{"id": ROOT_ID, "name": ROOT_NAME, "parent_id": None}])
    data.categories = pd.concat([root, categories], ignore_index=True)
    data.items = items
    return data


def _title(title: str, attributes: dict[str, object]) -> str:
    """``Dresses · Comfy and cute``: the class, then the product's usual review title."""
    klass = attributes.get("class") if isinstance(attributes, dict) else None
    return f"{klass} · {title}" if klass else str(title)
