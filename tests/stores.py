"""A Store with recsdk's schema migrated to head, for tests that write through it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from recsdk.storage.store import Store


@contextmanager
def migrated_store(url: str) -> Iterator[Store]:
    """A Store on ``url`` upgraded with the migrations (PostgreSQL: partitioned events);
    closed afterwards."""
    store = Store(url)
    try:
        store.upgrade()
        yield store
    finally:
        store.close()
