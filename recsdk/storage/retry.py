"""Retrying a write transaction that lost a race: deadlocks and serialisation failures.

PostgreSQL aborts one of two transactions that wait on each other (SQLSTATE 40P01)
or that cannot be serialised (40001). The aborted transaction wrote nothing, so
running it again is safe; a client should never see the 500 of a race it did not
cause. Other errors (a database that is down) are not retried here: they surface as
503 with ``Retry-After`` at the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., object])

#: SQLSTATEs of a transaction aborted because of a concurrent one.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialisation failure (the transaction was rolled back)."""
    if not isinstance(exc, DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_conflicts(fn: F) -> F:
    """Run a whole-transaction method again (up to 5 times, jittered backoff) when it
    lost a deadlock or serialisation race."""
    return retry(  # type: ignore[return-value]
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(5),
        wait=wait_random_exponential(multiplier=0.01, max=0.5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )(fn)
