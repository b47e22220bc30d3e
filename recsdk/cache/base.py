"""What recsdk asks of a cache; a miss is always a safe answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Cache(Protocol):
    """Bytes by key with a time to live, capped per-user activity lists, and the atomic
    set-if-absent that public endpoints' replay guards need, so that every process
    sharing Redis shares them.

    Implementations never raise on the request path: an unreachable backend answers
    as a miss, so the caller falls back to the database.
    """

    name: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def push_recent(self, entries: Mapping[str, list[str]], cap: int) -> None:
        """Append each key's entries to its list if the list exists, keeping the last
        ``cap``; a missing list stays missing (it is filled from the database)."""

    def set_recent(self, key: str, entries: list[str], cap: int, ttl_s: float) -> None:
        """Replace the list at ``key`` (after a miss was filled from the database)."""

    def get_recent(self, key: str) -> list[str] | None:
        """The list at ``key``, oldest first, or None when it is not cached."""

    def add(self, key: str, value: bytes, ttl_s: float) -> bool | None:
        """Store ``value`` only if ``key`` holds nothing, atomically: True when stored,
        False when the key was taken, None when the backend cannot say (down)."""


    def clear(self) -> None: ...

    def ping(self) -> bool:
        """True when the backend answers now (health checks)."""

    def close(self) -> None:
        """Release connections."""
