"""The app factory: where the SDK lives and who closes it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from recsdk import RecSDK
from recsdk.api import close_app, create_app
from tests.api.helpers import threads_left


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """create_app(config=...) reads RECSDK_* like RecSDK does; keep the host's out."""
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)


def test_the_sdk_lives_in_app_extensions(sdk: RecSDK) -> None:
    first, second = create_app(sdk), create_app(sdk)
    assert first.extensions["recsdk"] is sdk
    assert second.extensions["recsdk"] is sdk
    close_app(first)  # not built by the app: the caller closes it
    assert sdk.store.ping()
    assert sdk.request_log._thread.is_alive()


def test_an_app_built_from_config_owns_and_closes_its_sdk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_environment(monkeypatch)
    before = set(threading.enumerate())
    app = create_app(config={"database_url": f"sqlite:///{tmp_path / 'own.db'}",
                             "device": "cpu", "api": {"max_batch": 5}})
    sdk = app.extensions["recsdk"]
    assert isinstance(sdk, RecSDK)
    client = app.test_client()
    assert client.post("/api/v1/events", json={"user_id": "u", "item_id": "i",
                                               "type": "view"}).status_code == 201
    assert client.get("/api/v1/recommendations?user_id=u").status_code == 200
    assert app.config["MAX_CONTENT_LENGTH"] == sdk.settings.api["max_content_length"]
    close_app(app)
    assert not sdk.request_log._thread.is_alive()
    assert sdk.store.engine.pool.checkedout() == 0
    assert threads_left(before) == []
    close_app(app)  # a second close does nothing


def test_a_toml_path_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_environment(monkeypatch)
    path = tmp_path / "recsdk.toml"
    path.write_text(f'database_url = "sqlite:///{tmp_path / "t.db"}"\ndevice = "cpu"\n'
                    '[api]\nmax_batch = 7\n')
    app = create_app(config=str(path))
    try:
        assert app.extensions["recsdk"].settings.api["max_batch"] == 7
    finally:
        close_app(app)


def test_sdk_and_config_together_are_refused(sdk: RecSDK) -> None:
    with pytest.raises(ValueError, match="either an SDK or the config"):
        create_app(sdk, config={"device": "cpu"})
