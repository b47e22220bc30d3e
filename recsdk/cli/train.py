"""``recsdk train``: fit the enabled plugins on every stored event and store the models.

Each call makes a new immutable run in the model registry and activates it: running
servers swap to it within ``[models] model_refresh_s`` without a restart, and
``recsdk recommend`` loads it. ``recsdk models`` lists runs and rolls back;
``recsdk worker`` retrains on a schedule.

``--engine spark`` trains on Spark instead (:mod:`recsdk.engines.spark`; pyspark from
the ``spark`` extra): events over JDBC from PostgreSQL, or from a Parquet export
(``--parquet DIR``, see ``recsdk export``), the same run recorded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from recsdk.cli.session import open_sdk, user_errors
from recsdk.engines.spark_session import DEFAULT_JDBC_JAR

if TYPE_CHECKING:
    from recsdk.sdk import RecSDK, TrainReport


def register(group: click.Group) -> None:
    group.add_command(train)


def _train_on_spark(sdk: RecSDK, master: str, conf: tuple[str, ...], parquet: str | None,
                    jdbc_jar: str) -> TrainReport:
    from recsdk.engines.spark import SparkJob, train_with_spark
    from recsdk.engines.spark_session import parse_conf

    with user_errors(sdk.settings.database_url):
        job = SparkJob(master=master, conf=parse_conf(conf), parquet=parquet,
                       jars=(jdbc_jar,))
        return train_with_spark(sdk, job)


def format_bytes(size: int) -> str:
    """Human-readable artifact size (1 KiB = 1024 B)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local",
              show_default=True, help="local: fit in this process; spark: fit on Spark.")
@click.option("--spark-master", envvar="RECSDK_SPARK_MASTER", default="local[*]",
              show_default=True,
              help="Spark master URL (spark://host:7077, yarn, k8s://...); "
                   "$RECSDK_SPARK_MASTER.")
@click.option("--spark-conf", multiple=True, metavar="KEY=VALUE",
              help="A Spark setting (repeatable), e.g. spark.executor.memory=8g.")
@click.option("--parquet", "parquet", metavar="DIR",
              help="Spark: read the events of this Parquet export (`recsdk export`) "
                   "instead of the database over JDBC.")
@click.option("--jdbc-jar", envvar="RECSDK_JDBC_JAR", default=DEFAULT_JDBC_JAR,
              show_default=True, help="Spark: PostgreSQL's JDBC driver jar.")
@click.pass_context
def train(ctx: click.Context, as_json: bool, engine: str, spark_master: str,
          spark_conf: tuple[str, ...], parquet: str | None, jdbc_jar: str) -> None:
    """Fit the enabled plugins on the stored events and save their state."""
    if engine == "local" and parquet is not None:
        raise click.UsageError("--parquet is read by the Spark engine: add --engine spark")
    with open_sdk(ctx, serve_models=False) as sdk:
        if engine == "spark":
            report = _train_on_spark(sdk, spark_master, spark_conf, parquet, jdbc_jar)
        elif sdk.store.count_events() == 0:
            raise click.ClickException(
                "no events are stored yet, so there is nothing to train on; "
                "load some with `recsdk import` or the events API first"
            )
        else:
            report = sdk.fit()
        enabled = sdk.plugins.names()
        sdk.registry.prune(sdk.settings.models["keep_runs"])
    if as_json:
        click.echo(json.dumps({
            "run_id": report.run_id, "users": report.users, "items": report.items,
            "interactions": report.interactions, "plugins": report.plugins,
            "seconds": round(report.seconds, 3),
        }, sort_keys=True))
        return
    click.echo(f"trained run {report.run_id} in {report.seconds:.2f} s on "
               f"{report.users} users, {report.items} items, "
               f"{report.interactions} interactions")
    width = max(map(len, enabled), default=6)
    click.echo(f"  {'plugin':<{width}}  state")
    for name in enabled:
        size = report.plugins.get(name)
        state = format_bytes(size) if size is not None else "no learned state"
        click.echo(f"  {name:<{width}}  {state}")
