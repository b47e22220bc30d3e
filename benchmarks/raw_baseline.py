"""What the benchmarks compare recsdk against: the database driver alone.

A fresh SQLite file or PostgreSQL database with recsdk's schema, and the raw insert
path (sqlite3 ``executemany`` / psycopg ``COPY``) for rows encoded beforehand, so a
benchmark's ratio shows only what recsdk adds on top.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import uuid
from typing import Any

import psycopg

from recsdk.storage.store import Store

POSTGRES = os.environ.get("RECSDK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RAW_COLUMNS = "user_id, session_id, item_id, type, timestamp, value, context, event_id"


class Database:
    """A fresh SQLite file or PostgreSQL database with recsdk's schema, dropped after."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.dir = tempfile.TemporaryDirectory()
            self.path = os.path.join(self.dir.name, "shop.db")
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"recsdk_bench_{uuid.uuid4().hex[:8]}"
            self.admin = psycopg.connect(POSTGRES, autocommit=True)
            self.admin.execute(f'CREATE DATABASE "{self.name}"')
            self.url = POSTGRES.rsplit("/", 1)[0] + "/" + self.name
        self.store = Store(self.url)
        self.store.upgrade()

    def drop(self) -> None:
        self.store.close()
        if self.kind == "sqlite":
            self.dir.cleanup()
        else:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.close()


def raw_insert(db: Database, rows: list[tuple[Any, ...]], chunk: int) -> float:
    """Seconds for the driver alone to store pre-encoded rows, one transaction per chunk.

    Rows follow :data:`RAW_COLUMNS`; timestamps as SQLite text or, for PostgreSQL,
    aware datetimes.
    """
    if db.kind == "sqlite":
        con = sqlite3.connect(db.path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # as recsdk's engine does
        start = time.perf_counter()
        for s in range(0, len(rows), chunk):
            with con:
                con.executemany(f"INSERT INTO events ({RAW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                                rows[s:s + chunk])
        elapsed = time.perf_counter() - start
        con.close()
        return elapsed
    with psycopg.connect(db.url) as con:
        start = time.perf_counter()
        for s in range(0, len(rows), chunk):
            with con.cursor() as cur, cur.copy(f"COPY events ({RAW_COLUMNS}) FROM STDIN") as cp:
                for r in rows[s:s + chunk]:
                    cp.write_row(r)
            con.commit()
        return time.perf_counter() - start
