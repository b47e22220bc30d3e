"""Category paths, tags, price position and activity statistics of items."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recsdk.catalog import CategoryTree
from recsdk.errors import NotTrainedError
from recsdk.features.activity import first_seen, freshness_days, item_popularity
from recsdk.features.categorical import (
    CategoryPathEncoder,
    TagEncoder,
    item_paths,
    item_tags,
    normalise_tags,
)
from recsdk.features.price import PriceEncoder, discount_rate, prices

from .conftest import CATEGORIES, ITEMS


def test_category_path_includes_every_ancestor():
    tree = CategoryTree.from_frame(CATEGORIES)
    paths = item_paths(ITEMS, tree)
    assert paths[0] == ["fashion", "fashion/shoes"]
    encoder = CategoryPathEncoder().fit(paths, tree)
    matrix = encoder.transform([["fashion", "fashion/shoes"], ["fashion", "fashion/hats"],
                                ["electronics", "electronics/audio"], [], ["mystery"]])
    dense = matrix.toarray()
    assert dense[0].sum() == 2 and dense[3].sum() == 0 and dense[4].sum() == 0
    assert dense[0] @ dense[1] == 1  # siblings share the department column
    assert dense[0] @ dense[2] == 0
    restored = CategoryPathEncoder().load_state(encoder.state())
    assert (restored.transform(paths) != encoder.transform(paths)).nnz == 0
    with pytest.raises(NotTrainedError):
        CategoryPathEncoder().transform(paths)


def test_items_without_category_column_have_empty_paths():
    assert item_paths(pd.DataFrame({"id": ["x"]}), CategoryTree()) == [[]]


def test_tags_are_normalised_and_unknown_ones_dropped():
    assert normalise_tags([" Sale", "RED ", ""]) == ["sale", "red"]
    assert normalise_tags("a, b") == ["a", "b"]
    assert normalise_tags(None) == [] and normalise_tags(float("nan")) == []
    encoder = TagEncoder(min_count=2).fit(item_tags(ITEMS))
    assert "sport" in encoder.vocabulary_ and "5g" not in encoder.vocabulary_  # seen once
    row = encoder.transform([["sport", "never-seen"]]).toarray()[0]
    assert np.count_nonzero(row) == 1
    # rarer tags weigh more: "sport" is on 4 of 12 items, "leather" on 1
    weights = TagEncoder().fit(item_tags(ITEMS)).transform([["sport"], ["leather"]]).toarray()
    assert weights.max(axis=1)[1] > weights.max(axis=1)[0]
    assert weights.max(axis=1)[0] == pytest.approx(np.log(13 / 5) + 1)
    restored = TagEncoder().load_state(encoder.state())
    assert np.allclose(restored.transform([["sport"]]).toarray(),
                       encoder.transform([["sport"]]).toarray())


def test_price_position_within_category_and_buckets():
    price = np.array([10.0, 12.0, 14.0, 100.0, 120.0, 140.0, np.nan])
    leaves = ["cheap"] * 3 + ["dear"] * 3 + ["cheap"]
    encoder = PriceEncoder(n_buckets=2).fit(price, leaves)
    z = encoder.z_in_category(price, leaves)
    # the middle item of each category is typical there, whatever its absolute price
    cheap = np.log1p([10.0, 12.0, 14.0])
    assert z[1] == pytest.approx((cheap[1] - cheap.mean()) / cheap.std(ddof=1))
    assert abs(z[4]) < 0.1 and z[3] < 0 < z[5]
    assert encoder.bucket(price).tolist() == [0, 0, 0, 1, 1, 1, -1]
    assert encoder.transform(price).toarray()[6].sum() == 0  # unknown price: no bucket
    # a category with too few items is placed by the global statistics
    solo = encoder.z_in_category(np.array([50.0]), ["new"])[0]
    assert solo == pytest.approx((np.log1p(50) - encoder.global_mean_) / encoder.global_std_)
    restored = PriceEncoder(2).load_state(encoder.state())
    assert np.allclose(restored.z_in_category(price[:6], leaves[:6]), z[:6])


def test_prices_and_discounts_tolerate_bad_values():
    frame = pd.DataFrame({"price": [80, "n/a", -5, 30], "original_price": [100, 50, None, 20]})
    price = prices(frame, "price")
    assert np.isnan(price[1]) and np.isnan(price[2])
    rate = discount_rate(price, prices(frame, "original_price"))
    assert rate.tolist() == pytest.approx([0.2, 0.0, 0.0, 0.0])  # a "discount" up is none
    assert np.isnan(prices(pd.DataFrame({"id": [1]}), "price")).all()


def test_a_discount_rate_beyond_floats_is_none_without_a_warning():
    # found by the API fuzzer: a huge price over a subnormal original_price overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rate = discount_rate(np.array([1e300, 5.0]), np.array([1e-300, 10.0]))
    assert rate.tolist() == [0.0, 0.5]


def test_popularity_and_freshness(dataset):
    inter = dataset.interactions
    popularity = item_popularity(inter, dataset.n_items)
    codes = dict(zip(dataset.item_ids, range(dataset.n_items), strict=True))
    assert popularity[codes["p3"]] == 2 and popularity[codes["s3"]] == 0
    seen = first_seen(inter, dataset.n_items)
    assert np.isnan(seen[codes["s3"]])
    created = np.array([0.0, np.nan, np.nan])
    days = freshness_days(created, np.array([86_400.0, 2 * 86_400.0, np.nan]), 3 * 86_400.0)
    assert days[0] == 3.0 and days[1] == 1.0 and np.isnan(days[2])
