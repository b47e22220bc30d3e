"""``recsdk train --engine spark``: fit the enabled plugins on Spark and record the run
exactly as :meth:`recsdk.RecSDK.fit` records it.

Each plugin that Spark can train has a ``fit_spark(data, context)`` method, in its own
package (``plugins/popularity/spark.py``, say), that leaves the plugin in the state its
``recsdk_fit`` would: the registry then saves it with the plugin's own
``recsdk_save_state``, beside the same vocabulary artifact, so serving cannot tell which
engine trained. A configuration enabling a plugin that learns (``recsdk_fit``) without
``fit_spark`` is refused before Spark starts, naming the plugins: train those locally,
or disable them for Spark runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsdk.engines.spark_data import SparkEvents
from recsdk.engines.spark_session import (
    DEFAULT_JDBC_JAR,
    DEFAULT_MASTER,
    active_session,
    start_session,
)
from recsdk.engines.spark_sources import jdbc_options, parquet_events, read_jdbc, read_parquet
from recsdk.errors import ConfigurationError
from recsdk.plugin_manager import PluginManager

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from recsdk.sdk import RecSDK, TrainReport

#: The method a plugin implements to be trained by the Spark engine.
SPARK_FIT = "fit_spark"


@dataclass(frozen=True)
class SparkJob:
    """Where Spark runs and what it reads: ``parquet`` (an export directory) or, when
    None, the configured PostgreSQL database over JDBC."""

    master: str = DEFAULT_MASTER
    conf: Mapping[str, str] = field(default_factory=dict)
    parquet: str | None = None
    jars: tuple[str, ...] = (DEFAULT_JDBC_JAR,)


def unsupported_plugins(plugins: PluginManager) -> list[str]:
    """Enabled plugins that learn from events but cannot be trained on Spark."""
    return sorted(name for name in plugins.implementers("recsdk_fit")
                  if not callable(getattr(plugins.get(name), SPARK_FIT, None)))


def check_supported(plugins: PluginManager) -> None:
    missing = unsupported_plugins(plugins)
    if missing:
        able = sorted(n for n in plugins.names() if n not in missing
                      and callable(getattr(plugins.get(n), SPARK_FIT, None)))
        raise ConfigurationError(
            f"the Spark engine cannot train plugin(s) {', '.join(missing)} (Spark trains: "
            f"{', '.join(able) or 'none of the enabled ones'}; built in: popularity, "
            "category_popularity, trending, filters, als); disable them for this run "
            "or train with the local engine")


def check_jdbc(database_url: str, job: SparkJob) -> None:
    """Reading the database needs PostgreSQL and its JDBC driver (unless the Spark
    settings bring their own jars)."""
    jdbc_options(database_url)
    if "spark.jars" in job.conf or "spark.jars.packages" in job.conf:
        return
    if not any(Path(j).is_file() for j in job.jars):
        raise ConfigurationError(
            f"PostgreSQL's JDBC driver is not at {', '.join(job.jars) or '(no path)'}: "
            "install it (Debian: apt-get install libpostgresql-jdbc-java) and pass "
            "--jdbc-jar, or train from a Parquet export (--parquet)")


def train_with_spark(sdk: RecSDK, job: SparkJob,
                     session: SparkSession | None = None) -> TrainReport:
    """Train ``sdk``'s enabled plugins on Spark, record the run and activate it.

    ``session``: a Spark session to use (else the process's active one, as in a notebook
    or a test); else one is started from ``job`` and stopped at the end.
    """
    start = time.perf_counter()
    plugins = sdk._new_plugins()
    try:
        check_supported(plugins)  # before the JVM starts: a refusal costs nothing
        if job.parquet is None:
            check_jdbc(sdk.settings.database_url, job)
        else:
            parquet_events(job.parquet)
        session = session or active_session()
        own = session is None
        spark = session or start_session(job.master, job.conf, job.jars)
        try:
            return _train(sdk, plugins, job, spark, start)
        finally:
            if own:
                spark.stop()
    finally:
        plugins.close()


def _train(sdk: RecSDK, plugins: PluginManager, job: SparkJob, spark: SparkSession,
           start: float) -> TrainReport:
    from recsdk.sdk import TrainReport, training_reports

    sdk.refresh_catalog()
    catalog = sdk.catalog
    if job.parquet is not None:
        source = read_parquet(spark, job.parquet)
        through = None
    else:
        through = sdk.store.max_event_id()
        if through == 0:
            raise ConfigurationError("no events are stored yet, so there is nothing to train "
                                     "on; load some with `recsdk import` first")
        source = read_jdbc(spark, sdk.settings.database_url, through)
    data = SparkEvents.from_source(spark, source, catalog, sdk.settings.event_weights)
    if job.parquet is not None:
        through = _last_row_id(source)
    context = sdk._context(catalog)
    plugins.call_each("recsdk_configure", isolate=False, context=context)
    run_id = sdk.registry.begin_run(sdk.config_hash, plugins.names())
    try:
        for name in plugins.names():
            fit = getattr(plugins.get(name), SPARK_FIT, None)
            if callable(fit):
                fit(data, context)
        sizes = sdk._save_run(run_id, plugins, data.vocabulary)
        stats = {"users": data.n_users, "items": data.n_items, "interactions": data.n_events,
                 "bytes": sizes, "seconds": round(time.perf_counter() - start, 3),
                 "engine": {"name": "spark", "master": spark.sparkContext.master,
                            "source": "parquet" if job.parquet is not None else "jdbc"},
                 **training_reports(plugins)}
        sdk.registry.finish_run(run_id, fingerprint=data.fingerprint(),
                                events_through=through, stats=stats)
    except BaseException as exc:
        sdk.registry.fail_run(run_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        data.close()
    return TrainReport(run_id, data.n_users, data.n_items, data.n_events, sizes,
                       time.perf_counter() - start)


def _last_row_id(source: Any) -> int | None:
    """The newest row id in an export: the stored events after it are replayed to a
    loaded run (None for an empty id column)."""
    from pyspark.sql import functions as F

    value = source.agg(F.max("id")).first()[0]
    return None if value is None else int(value)
