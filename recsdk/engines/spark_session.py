"""Starting Spark for training: pyspark and Java checked first, with errors that say what
to install, so that ``--engine spark`` never fails deep inside the JVM.

pyspark is imported here and only here (plus the Spark engine's modules, which import
this one first), so that recsdk without the ``spark`` extra works as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsdk.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The extra that installs pyspark.
SPARK_EXTRA = "spark"
#: Every core of this machine; a cluster is ``spark://host:7077``, ``yarn``, ``k8s://...``.
DEFAULT_MASTER = "local[*]"
#: Debian's libpostgresql-jdbc-java puts PostgreSQL's JDBC driver here.
DEFAULT_JDBC_JAR = "/usr/share/java/postgresql.jar"
#: What recsdk sets unless ``--spark-conf`` says otherwise: UTC timestamps (events are
#: UTC instants), no web UI or progress bars on a command line.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def import_pyspark() -> Any:
    """The pyspark module, or an error naming the extra that installs it."""
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigurationError(
            "the Spark engine needs pyspark, which is not installed: "
            f"pip install 'recsdk[{SPARK_EXTRA}]' (and Java 17)") from exc
    return pyspark


def java_executable(environ: Mapping[str, str] | None = None) -> str:
    """Where Spark will find ``java`` ($JAVA_HOME/bin/java, else on PATH), or an error."""
    environ = os.environ if environ is None else environ
    home = environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file():
            return str(java)
        raise ConfigurationError(f"JAVA_HOME is {home}, but {java} does not exist; the "
                                 "Spark engine needs Java 17 (e.g. apt-get install "
                                 "openjdk-17-jre-headless)")
    found = shutil.which("java", path=environ.get("PATH"))
    if found is None:
        raise ConfigurationError("the Spark engine needs Java 17, and no `java` is on PATH "
                                 "(install e.g. openjdk-17-jre-headless, or set JAVA_HOME)")
    return found


def parse_conf(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--spark-conf``) as a dict; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--spark-conf takes KEY=VALUE (e.g. "
                                     f"spark.executor.memory=8g), got {pair!r}")
        out[key.strip()] = value
    return out


def active_session() -> SparkSession | None:
    """The Spark session this process already runs (a notebook's, a test's), if any:
    used as it is, and left running."""
    import_pyspark()
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def start_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None,
                  jars: tuple[str, ...] = (), app_name: str = "recsdk-train") -> SparkSession:
    """A Spark session on ``master`` with recsdk's defaults, ``conf`` and ``jars`` (local
    paths shipped to the executors, e.g. the JDBC driver)."""
    import_pyspark()
    java_executable()
    from pyspark.sql import SparkSession

    settings = {**DEFAULT_CONF, **dict(conf or {})}
    if master.startswith("local"):  # small shuffles: one partition per core is plenty
        settings.setdefault("spark.sql.shuffle.partitions", str(os.cpu_count() or 2))
    present = [j for j in jars if Path(j).is_file()]
    if present:
        listed = settings.get("spark.jars")
        settings["spark.jars"] = ",".join(([listed] if listed else []) + present)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
