"""Concurrent upgrades of one database take turns, and all of them succeed.

Each upgrader is a process of its own (as servers and deploy jobs are): it connects,
says it is ready, waits for a shared signal file and then migrates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from recsdk.storage import migrate
from recsdk.storage.database import make_engine
from tests.storage.test_migrations import model_differences

REPO = Path(__file__).resolve().parents[2]

UPGRADER = """
import sys, time
from pathlib import Path
from recsdk.storage import migrate
from recsdk.storage.database import make_engine

engine = make_engine(sys.argv[1])
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
migrate.upgrade(engine)
print(migrate.current(engine), flush=True)
"""


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


@contextmanager
def upgraders(url: str, go: Path, count: int = 2) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` processes, each connected and waiting for ``go`` to exist."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADER, url, str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Each process's printed revision, after asserting that it succeeded."""
    revisions = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        revisions.append(out.strip())
    return revisions


def test_upgrades_started_at_the_same_moment_all_succeed(
        engine: Engine, empty_database_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with upgraders(empty_database_url, go, count=3) as procs:
        go.touch()
        revisions = finish(procs)

    assert revisions == list(migrate.head_revisions()) * 3
    assert migrate.current_heads(engine) == migrate.head_revisions()
    assert model_differences(engine) == []


def test_an_upgrade_waits_while_another_holds_the_lock(
        engine: Engine, empty_database_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with upgraders(empty_database_url, go) as procs:
        with migrate.migration_lock(engine):
            go.touch()
            time.sleep(1.5)  # far longer than an upgrade of an empty database takes
            assert [proc.poll() for proc in procs] == [None, None]
            assert inspect(engine).get_table_names() == []
        # released: both go on, one after the other
        assert finish(procs) == list(migrate.head_revisions()) * 2
    assert model_differences(engine) == []


def test_sqlite_takes_a_file_lock_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    try:
        with migrate.migration_lock(engine):
            assert (tmp_path / "shop.db.migrate.lock").exists()
    finally:
        engine.dispose()


def test_an_in_memory_database_needs_no_lock() -> None:
    engine = make_engine("sqlite://")
    try:
        migrate.upgrade(engine)
        assert migrate.current_heads(engine) == migrate.head_revisions()
    finally:
        engine.dispose()
