"""One local Spark session for the engine tests (starting the JVM is their main cost)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recsdk.engines.spark_session import DEFAULT_JDBC_JAR, start_session


@pytest.fixture(scope="package")
def spark() -> Iterator[Any]:
    """Spark on one local core, with PostgreSQL's JDBC driver; stopped after the tests."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    session = start_session("local[1]", {"spark.sql.shuffle.partitions": "1",
                                         "spark.default.parallelism": "1"},
                            jars=(DEFAULT_JDBC_JAR,), app_name="recsdk-tests")
    yield session
    session.stop()
