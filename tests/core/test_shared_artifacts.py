"""A loaded run's large arrays stay memory-mapped, so serving processes share them.

Arrays above ``[models] inline_max_bytes`` are ``.npy`` files loaded with
``mmap_mode="r"``: the operating system keeps one copy of their pages for every
process that serves the run. A plugin that converts one (a dtype change, a
``np.array`` copy, an in-place ``eliminate_zeros``) gives each worker a private copy
instead, or fails on the read-only mapping; these tests catch both.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import pytest
from recsdk_plugins.knn.user import UserModel

from recsdk.interactions import UserRows
from tests.core.shop import fill

#: What each plugin must keep memory-mapped (attribute paths from the plugin).
MAPPED = {
    "popularity": ["popularity_"],
    "trending": ["scores_"],
    "category_popularity": ["popularity_"],
    "cooccurrence": ["associations_.indptr", "item_baskets_"],
    "item_knn": ["similarity_.data", "similarity_.indices", "rows_.matrix.data"],
    "ease": ["b_", "rows_.matrix.data"],
    "als": ["user_factors_", "item_factors_", "item_unit_", "rows_.matrix.data"],
    "bpr": ["user_factors_", "item_factors_", "item_unit_"],
    "content": ["model_.user_items.data"],
    "user_knn": ["model_.rows.matrix.data", "model_.weighted_t.data", "model_.items_t.data",
                 "model_.user_sq", "model_.item_sq", "model_.row_weighting.idf"],
}
PARAMS: dict[str, dict[str, Any]] = {"als": {"factors": 4, "iterations": 2},
                                     "bpr": {"factors": 4, "iterations": 2}}


def memory_mapped(array: np.ndarray) -> bool:
    """Whether ``array``'s memory belongs to a file mapping (through its bases)."""
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def attribute(obj: object, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture
def loaded(make_sdk):
    """Every plugin of MAPPED trained with all state in files, then loaded afresh."""
    config = {"models": {"inline_max_bytes": 0, "model_refresh_s": 0},
              "plugins": {name: PARAMS.get(name, {}) for name in MAPPED}}
    trainer = make_sdk(config)
    fill(trainer)
    run_id = trainer.fit().run_id
    trainer.close()
    server = make_sdk(config)
    assert server.model_run == run_id
    return server


def test_every_plugin_keeps_its_loaded_arrays_memory_mapped(loaded) -> None:
    run = loaded._run
    for name, paths in MAPPED.items():
        plugin = run.plugins.get(name)
        for path in paths:
            value = attribute(plugin, path)
            assert isinstance(value, np.ndarray), (name, path, type(value))
            assert memory_mapped(value), f"{name}.{path} was copied at load"


def test_content_blocks_stay_mapped_and_score(loaded) -> None:
    """content's feature blocks once failed to load from a read-only mapping."""
    model = loaded._run.plugins.get("content").model_
    assert model.blocks and all(memory_mapped(m.data) for m in model.blocks.values())
    result = loaded.recommend("u1", k=3, log_request=False)
    assert "content" in result.plugins and not result.failures and result.items


def test_als_of_a_run_without_saved_unit_vectors_computes_them(loaded) -> None:
    """Runs saved before ``item_unit`` was part of the state (or by another trainer)
    still load: the unit vectors are computed, as they were before."""
    als = loaded._run.plugins.get("als")
    state = {"user_factors": als.user_factors_, "item_factors": als.item_factors_,
             **als.rows_.state()}
    assert isinstance(als.rows_, UserRows)
    saved = np.array(als.item_unit_)
    del als.item_unit_
    als._after_factors(state)
    assert not memory_mapped(als.item_unit_)
    np.testing.assert_allclose(als.item_unit_, saved, rtol=1e-6)
    norms = np.linalg.norm(als.item_unit_, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


def test_user_knn_of_a_run_with_rows_only_rebuilds_the_same_model(loaded) -> None:
    """A run saved before user_knn stored its derived arrays (or one whose weighting
    parameters changed since) is rebuilt from the rows, as it was before."""
    plugin = loaded._run.plugins.get("user_knn")
    saved = plugin.model_
    rebuilt = UserModel.from_state(saved.rows.state(), saved.rows, plugin)
    assert not memory_mapped(rebuilt.weighted_t.data)
    for name in ("weighted_t", "items_t"):
        assert (getattr(rebuilt, name) != getattr(saved, name)).nnz == 0
    np.testing.assert_allclose(rebuilt.user_sq, saved.user_sq)
    np.testing.assert_allclose(rebuilt.row_weighting.idf, saved.row_weighting.idf)
    other = {**saved.state(), "weighting": np.array(["none"])}  # trained with another
    assert not memory_mapped(UserModel.from_state(other, saved.rows, plugin).user_sq)
