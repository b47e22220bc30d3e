"""``recsdk export --format parquet DIR``: the stored events and items as Parquet.

The export is what ``recsdk train --engine spark --parquet DIR`` reads: a snapshot that
a Spark cluster without access to the shop's database can train on. Written by Spark
(pyspark from the ``spark`` extra, and Java), in bounded memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from recsdk.cli.session import open_sdk, user_errors
from recsdk.engines.spark_session import DEFAULT_JDBC_JAR


def register(group: click.Group) -> None:
    group.add_command(export)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet"]), default="parquet",
              show_default=True, help="The file format.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=100_000,
              show_default=True, help="Events read per chunk (databases other than "
              "PostgreSQL, which Spark reads over JDBC).")
@click.option("--spark-master", envvar="RECSDK_SPARK_MASTER", default="local[*]",
              show_default=True, help="Spark master URL; $RECSDK_SPARK_MASTER.")
@click.option("--jdbc-jar", envvar="RECSDK_JDBC_JAR", default=DEFAULT_JDBC_JAR,
              show_default=True, help="PostgreSQL's JDBC driver jar.")
@click.pass_context
def export(ctx: click.Context, directory: str, fmt: str, chunk_rows: int, spark_master: str,
           jdbc_jar: str) -> None:
    """Write the stored events and items to DIRECTORY/events and DIRECTORY/items."""
    from recsdk.engines.spark_export import check_target, export_parquet
    from recsdk.engines.spark_session import active_session, start_session

    with open_sdk(ctx, serve_models=False) as sdk, user_errors(sdk.settings.database_url):
        check_target(Path(directory))  # before the JVM starts
        running = active_session()
        spark = running or start_session(spark_master, jars=(jdbc_jar,),
                                         app_name="recsdk-export")
        try:
            counts = export_parquet(spark, sdk.store, sdk.settings.database_url, directory,
                                    chunk_rows)
        finally:
            if running is None:
                spark.stop()
    click.echo(json.dumps({"directory": directory, "format": fmt, **counts}, sort_keys=True))
