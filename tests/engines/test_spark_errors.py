"""``--engine spark`` refuses what cannot work with one line naming it, before the JVM
starts where it can (none of these tests starts Spark)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recsdk.engines.spark_session import java_executable, parse_conf, start_session
from recsdk.errors import ConfigurationError
from tests.cli.conftest import Invoke, Shop, assert_user_error, generate_shop, invoke  # noqa: F401


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return generate_shop(f"sqlite:///{tmp_path / 'shop.db'}", n_users=6, n_items=5)


@pytest.fixture
def fake_export(tmp_path: Path) -> Path:
    """A directory that passes the export check (Spark never reads it in these tests)."""
    events = tmp_path / "export" / "events"
    events.mkdir(parents=True)
    (events / "part-00000.parquet").write_bytes(b"")
    return tmp_path / "export"


def test_an_unknown_engine_is_refused(invoke: Invoke, shop: Shop) -> None:  # noqa: F811
    result = invoke("train", "--engine", "dask", database_url=shop.url)
    assert result.exit_code == 2
    assert "Invalid value for '--engine'" in result.output and "spark" in result.output


def test_plugins_spark_cannot_train_are_named(invoke: Invoke, shop: Shop,  # noqa: F811
                                              fake_export: Path) -> None:
    result = invoke("train", "--engine", "spark", "--parquet", str(fake_export),
                    database_url=shop.url, env={"RECSDK_PLUGINS": "popularity,item_knn,ease"})
    assert_user_error(result, "cannot train plugin(s) ease, item_knn", "Spark trains: "
                      "filters, popularity")


def test_a_missing_parquet_export_is_named(invoke: Invoke, shop: Shop,  # noqa: F811
                                           tmp_path: Path) -> None:
    result = invoke("train", "--engine", "spark", "--parquet", str(tmp_path / "nowhere"),
                    database_url=shop.url)
    assert_user_error(result, "no Parquet events at", "recsdk export --format parquet")


def test_sqlite_needs_a_parquet_export(invoke: Invoke, shop: Shop) -> None:  # noqa: F811
    result = invoke("train", "--engine", "spark", database_url=shop.url)
    assert_user_error(result, "from PostgreSQL only", "--parquet DIR")


def test_parquet_needs_the_spark_engine(invoke: Invoke, shop: Shop,  # noqa: F811
                                        fake_export: Path) -> None:
    result = invoke("train", "--parquet", str(fake_export), database_url=shop.url)
    assert result.exit_code == 2 and "add --engine spark" in result.output


def test_a_missing_pyspark_names_the_extra(invoke: Invoke, shop: Shop,  # noqa: F811
                                           fake_export: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark fails
    result = invoke("train", "--engine", "spark", "--parquet", str(fake_export),
                    database_url=shop.url)
    assert_user_error(result, "needs pyspark", "pip install 'recsdk[spark]'")


def test_export_refuses_a_directory_in_use(invoke: Invoke, shop: Shop,  # noqa: F811
                                           fake_export: Path) -> None:
    result = invoke("export", "--format", "parquet", str(fake_export), database_url=shop.url)
    assert_user_error(result, "already exists and is not empty")


def test_a_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="needs Java 17"):
        java_executable({"PATH": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="does not exist"):
        java_executable({"JAVA_HOME": str(tmp_path / "jdk")})
    pytest.importorskip("pyspark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(ConfigurationError, match="Java 17"):
        start_session("local[1]")


def test_spark_settings_are_key_value_pairs() -> None:
    assert parse_conf(["spark.executor.memory=8g", "a.b=x=y"]) == {
        "spark.executor.memory": "8g", "a.b": "x=y"}
    with pytest.raises(ConfigurationError, match="KEY=VALUE"):
        parse_conf(["spark.executor.memory"])
