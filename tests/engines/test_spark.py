"""``recsdk train --engine spark``: the run it records serves exactly like a local run.

Spark runs on one local core over the CLI tests' small generated shop; the local
trainer's run over the same events is the reference, artifact for artifact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.factorization import ALS

from recsdk import RecSDK
from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.engines.spark import SparkJob, train_with_spark
from recsdk.engines.spark_data import SparkEvents
from recsdk.engines.spark_export import EVENTS_SCHEMA, export_parquet
from recsdk.engines.spark_session import DEFAULT_JDBC_JAR
from recsdk.registry import STATE, VOCABULARY
from recsdk.sdk import RUN_OWNER
from recsdk.types import PluginContext
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
@pytest.mark.skipif(not Path(DEFAULT_JDBC_JAR).exists(),
                    reason=f"PostgreSQL's JDBC driver is not at {DEFAULT_JDBC_JAR} (apt-get "
                    "install libpostgresql-jdbc-java; .ci/run installs it)")
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


def test_the_command_line_exports_and_trains(spark: Any, tmp_path: Path) -> None:
    """``recsdk export --format parquet`` then ``recsdk train --engine spark --parquet``
    (in this process, so on the tests' running Spark session)."""
    from click.testing import CliRunner

    from recsdk.cli import cli
    from tests.cli.conftest import HOST_VARIABLES

    shop = generate_shop(f"sqlite:///{tmp_path / 'shop.db'}", n_users=10, n_items=6)
    env: dict[str, str | None] = {**dict.fromkeys(HOST_VARIABLES),
                                  "RECSDK_DATABASE_URL": shop.url}
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--format", "parquet", str(tmp_path / "out")],
                             env=env)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["events"] == len(shop.events)
    trained = runner.invoke(cli, ["train", "--engine", "spark", "--parquet",
                                  str(tmp_path / "out"), "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["interactions"] == len(shop.events)
    assert set(report["plugins"]) == {"popularity", "filters"}
    with RecSDK({"database_url": shop.url}, environ={}) as sdk:
        assert sdk.model_run == report["run_id"]
    assert spark.sparkContext._jsc is not None  # the tests' session was left running


def clustered_dataset(seed: int = 3) -> tuple[InteractionDataset, dict[str, str]]:
    """90 users in three taste groups of 12 items each; each user saw 7 items of their
    group (one more is held out) and one random item (some events carry a value, some
    none). Returns the training dataset and each user's held-out item."""
    rng = np.random.default_rng(seed)
    rows, held_out = [], {}
    for u in range(90):
        group = np.arange(12) + 12 * (u % 3)
        picked = rng.permutation(group)[:8]
        held_out[f"u{u}"] = f"i{picked[7]}"
        for item in [*picked[:7], rng.integers(36)]:
            rows.append({"user_id": f"u{u}", "item_id": f"i{item}", "type": "view",
                         "value": float(item % 5) if item % 2 else None})
    return InteractionDataset.from_frame(pd.DataFrame(rows)), held_out


def hit_rate(plugin: ALS, dataset: InteractionDataset, held_out: dict[str, str]) -> float:
    """Share of users whose held-out item is in their top 5 of the unseen items."""
    users = list(held_out)
    scores = plugin.user_factors_[dataset.user_codes(users)] @ plugin.item_factors_.T
    seen = dataset.matrix[dataset.user_codes(users)].toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    codes = dataset.item_codes([held_out[u] for u in users])
    return float(np.mean([c in row for c, row in zip(codes, top, strict=True)]))


def test_spark_als_learns_as_well_as_implicit(spark: Any) -> None:
    dataset, held_out = clustered_dataset()
    params = {"factors": 8, "iterations": 10, "regularization": 1.0, "index": "none"}
    context = PluginContext(settings=Settings(seed=7), seed=7, device_setting="cpu")
    by_implicit, by_spark = ALS.from_config(params), ALS.from_config(params)
    by_implicit.recsdk_configure(context=context)
    by_implicit.recsdk_fit(dataset=dataset, context=context)
    data = SparkEvents.from_dataset(spark, dataset)
    by_spark.fit_spark(data, context)
    data.close()

    implicit_hits, spark_hits = (hit_rate(p, dataset, held_out)
                                 for p in (by_implicit, by_spark))
    # a random ranking hits 5 of ~29 unseen items: 0.17; the group's 5 unseen items: 1.0
    assert implicit_hits >= 0.8
    assert spark_hits >= implicit_hits - 0.1, (spark_hits, implicit_hits)
    assert by_spark.user_factors_.shape == by_implicit.user_factors_.shape


def test_source_events_get_codes_weights_and_seconds(spark: Any) -> None:
    """Vocabularies sorted as the local trainer's (catalogue items included); a type
    without a configured weight counts 1, as in a local dataset."""
    when = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    source = spark.createDataFrame(
        [(1, "u2", None, "i9", "wishlist", when, None), (2, "u1", "s", "i1", "purchase",
                                                         when, 2.0)], EVENTS_SCHEMA)
    catalog = Catalog.from_frames(pd.DataFrame({"id": ["i5"]}), pd.DataFrame())
    data = SparkEvents.from_source(spark, source, catalog, {"purchase": 8.0})
    assert list(data.vocabulary.user_ids) == ["u1", "u2"]
    assert list(data.vocabulary.item_ids) == ["i1", "i5", "i9"]
    rows = sorted(tuple(r) for r in data.events.select("user", "item", "type", "weight",
                                                       "timestamp").collect())
    assert rows == [(0, 0, "purchase", 8.0, when.timestamp()),
                    (1, 2, "wishlist", 1.0, when.timestamp())]
    assert data.n_events == 2 and data.data_end == when.timestamp()
    data.close()
