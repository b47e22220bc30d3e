"""Fixtures the plugin tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recsdk.registry import ModelRegistry
from recsdk.storage import models
from recsdk.storage.database import make_engine


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    """A model registry on a fresh SQLite database, arrays over 1 MiB stored as files."""
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    models.Base.metadata.create_all(engine)
    yield ModelRegistry(engine, tmp_path / "artifacts", inline_max_bytes=1 << 20)
    engine.dispose()
