"""``recsdk train --engine spark``: the run it records serves exactly like a local run.

Spark runs on one local core over the CLI tests' small generated shop; the local
trainer's run over the same events is the reference, artifact for artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsdk import RecSDK
from recsdk.engines.spark import SparkJob, train_with_spark
from recsdk.engines.spark_export import export_parquet
from recsdk.registry import STATE, VOCABULARY
from recsdk.sdk import RUN_OWNER
from tests.cli.conftest import generate_shop
from tests.postgres import fresh_postgres_database

#: Every plugin the Spark engine trains, with parameters that exercise its options.
PLUGINS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "events_popularity": {"plugin": "popularity", "count": "weight", "window_days": 10},
    "category_popularity": {},
    "trending": {"half_life_hours": 24},
    "filters": {},
    "als": {"factors": 8, "iterations": 5, "regularization": 1.0},
}


def run_arrays(sdk: RecSDK, run_id: str) -> dict[str, dict[str, np.ndarray]]:
    """Every array artifact of a run, by owner."""
    out = {RUN_OWNER: sdk.registry.reader(run_id, RUN_OWNER).load_arrays(VOCABULARY)}
    for name in sdk.registry.get(run_id).plugins:
        reader = sdk.registry.reader(run_id, f"plugin:{name}")
        if STATE in reader:
            out[name] = reader.load_arrays(STATE)
    return out


@pytest.fixture(scope="module")
def trained(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shop trained locally, then by Spark from a Parquet export of it."""
    root = tmp_path_factory.mktemp("spark")
    shop = generate_shop(f"sqlite:///{root / 'shop.db'}", n_users=40, n_items=20)
    config = {"database_url": shop.url, "plugins": PLUGINS}
    with RecSDK(config, environ={}) as sdk:
        local = sdk.fit().run_id
        export = export_parquet(spark, sdk.store, shop.url, root / "export", chunk_rows=50)
        report = train_with_spark(sdk, SparkJob(parquet=str(root / "export")))
        arrays = {"local": run_arrays(sdk, local), "spark": run_arrays(sdk, report.run_id)}
        info = sdk.registry.get(report.run_id)
    return {"shop": shop, "config": config, "local": local, "report": report,
            "arrays": arrays, "info": info, "export": export, "root": root}


def test_the_export_holds_every_event_and_item(trained: dict[str, Any]) -> None:
    shop = trained["shop"]
    assert trained["export"] == {"events": len(shop.events), "items": len(shop.items)}


def test_the_spark_run_is_active_and_serves(trained: dict[str, Any]) -> None:
    report, shop = trained["report"], trained["shop"]
    assert report.interactions == len(trained["shop"].events)
    with RecSDK(trained["config"], environ={}) as sdk:
        assert sdk.model_run == report.run_id
        result = sdk.recommend("u03", k=5)
        assert not result.degraded, result.failures
        assert len(result.item_ids) == 5
        assert not set(result.item_ids) & shop.purchased_by("u03")  # filters' state
    info = trained["info"]
    assert info.stats["engine"]["name"] == "spark"
    assert info.events_through == len(shop.events)  # row ids 1..n: replay starts after
    assert info.data_fingerprint and info.stats["interactions"] == len(shop.events)


def test_every_artifact_has_the_local_layout(trained: dict[str, Any]) -> None:
    local, spark = trained["arrays"]["local"], trained["arrays"]["spark"]
    assert set(spark) == set(local)
    for owner, arrays in local.items():
        assert set(spark[owner]) == set(arrays), owner
        for key, value in arrays.items():
            assert spark[owner][key].dtype == value.dtype, (owner, key)
            assert spark[owner][key].shape == value.shape, (owner, key)


def test_counted_state_equals_the_local_plugins_exactly(trained: dict[str, Any]) -> None:
    local, spark = trained["arrays"]["local"], trained["arrays"]["spark"]
    for owner in (RUN_OWNER, "popularity", "events_popularity", "category_popularity",
                  "filters"):
        for key, value in local[owner].items():
            np.testing.assert_array_equal(spark[owner][key], value, err_msg=f"{owner}.{key}")
    for key in ("rows_indptr", "rows_indices", "rows_data", "rows_shape"):
        np.testing.assert_array_equal(spark["als"][key], local["als"][key], err_msg=key)
    np.testing.assert_allclose(spark["trending"]["scores"], local["trending"]["scores"],
                               rtol=1e-12)
    assert spark["trending"]["reference_time"][0] == pytest.approx(
        local["trending"]["reference_time"][0], abs=1e-6)


def test_served_lists_equal_a_local_runs(trained: dict[str, Any]) -> None:
    """Popularity and the filters only: the same state gives the same lists."""
    config = {**trained["config"], "plugins": {"popularity": {}, "filters": {}}}
    with RecSDK(config, environ={}) as sdk:
        spark_run = train_with_spark(sdk, SparkJob(parquet=str(trained["root"] / "export")))
        sdk.load_models(spark_run.run_id)
        by_spark = [sdk.recommend(f"u{u:02d}", k=5).item_ids for u in range(10)]
        sdk.load_models(sdk.fit(save=True).run_id)
        by_local = [sdk.recommend(f"u{u:02d}", k=5).item_ids for u in range(10)]
    assert by_spark == by_local


@pytest.mark.postgres
def test_reads_postgresql_over_jdbc(spark: Any) -> None:
    with fresh_postgres_database() as url:
        shop = generate_shop(url, n_users=30, n_items=12)
        config = {"database_url": url, "plugins": {"popularity": {}, "filters": {}}}
        with RecSDK(config, environ={}) as sdk:
            local = run_arrays(sdk, sdk.fit().run_id)
            report = train_with_spark(sdk, SparkJob())
            by_spark = run_arrays(sdk, report.run_id)
            assert sdk.registry.get(report.run_id).events_through == sdk.store.max_event_id()
        with RecSDK(config, environ={}) as sdk:
            assert sdk.model_run == report.run_id
            assert len(sdk.recommend("u01", k=3).item_ids) == 3
    assert report.interactions == len(shop.events)
    for owner, arrays in local.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(by_spark[owner][key], value, err_msg=owner)


def test_a_second_export_into_the_same_directory_is_refused(trained: dict[str, Any],
                                                            spark: Any) -> None:
    from recsdk.errors import ConfigurationError

    with RecSDK(trained["config"], environ={}, serve_models=False) as sdk, \
            pytest.raises(ConfigurationError, match="not empty"):
        export_parquet(spark, sdk.store, trained["shop"].url, Path(trained["root"] / "export"))
