"""Fixtures for the REST API tests: an SDK on SQLite in tmp_path and its app.

The SDK is built with ``environ={}`` so that the host's ``RECSDK_*`` variables never
leak into a test, and with ``device="cpu"`` so that no GPU library is imported. Each
test gets its own copy of one database migrated once per session (migrating takes
longer than most tests).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.api import create_app

API_KEY = "s3cret-key"


def sqlite_sdk(template: Path, path: Path, **config: Any) -> RecSDK:
    """An SDK on a copy of the migrated ``template`` database, at ``path``."""
    shutil.copyfile(template, path)
    return RecSDK({"database_url": f"sqlite:///{path}", "device": "cpu", **config},
                  environ={}, migrate=False)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the latest schema, to copy."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    RecSDK({"database_url": f"sqlite:///{path}", "device": "cpu"}, environ={}).close()
    return path


@pytest.fixture
def make_sdk(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Callable[..., RecSDK]]:
    """Build SDKs on a fresh SQLite file (or ``database_url``); all closed afterwards."""
    made: list[RecSDK] = []

    def build(**config: Any) -> RecSDK:
        if "database_url" in config:
            sdk = RecSDK({"device": "cpu", **config}, environ={})
        else:
            sdk = sqlite_sdk(migrated_sqlite, tmp_path / f"api{len(made)}.db", **config)
        made.append(sdk)
        return sdk

    yield build
    for sdk in made:
        sdk.close()


@pytest.fixture
def sdk(make_sdk: Callable[..., RecSDK]) -> RecSDK:
    return make_sdk()


@pytest.fixture
def app(sdk: RecSDK) -> Flask:
    return create_app(sdk)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def keyed_sdk(make_sdk: Callable[..., RecSDK]) -> RecSDK:
    """An SDK whose API requires ``API_KEY`` for writes."""
    return make_sdk(api={"api_key": API_KEY})


@pytest.fixture
def keyed_client(keyed_sdk: RecSDK) -> FlaskClient:
    return create_app(keyed_sdk).test_client()
