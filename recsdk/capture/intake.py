"""Turning page events into feedback: verify, check against the served list, deduplicate,
store, count.

An event is stored only when its list token verifies (our signature, not expired), the
token's visitor is one the request proves (visitor cookie or visitor token), the list
was served (its request id is in the served-list log) and showed that item at that
position, and the same (token, type, item, position) was not stored within
``[api] beacon_replay_ttl_s``. Everything refused is counted by reason and never
stored. Replay guards and rate limits live in Redis when the SDK has one (shared by
every process), else in this process's memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from recsdk.cache import Cache, MemoryCache
from recsdk.capture.events import BeaconEvent, read_event
from recsdk.capture.ratelimit import RateLimits
from recsdk.capture.tokens import ListClaims, TokenError, Tokens, Visitor
from recsdk.errors import ValidationFailed
from recsdk.sdk import RecSDK

log = logging.getLogger(__name__)

#: The rate-limit scopes: beacon posts and logging redirects share one window per
#: client; widget lists (each one computed and logged) have their own.
SCOPES = ("beacon", "widget")


@dataclass(frozen=True)
class Refusal:
    index: int
    reason: str
    message: str


@dataclass
class IntakeReport:
    """What became of a batch: how many were stored, and each refusal with its reason."""

    received: int
    accepted: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        reasons = Counter(r.reason for r in self.refusals)
        return {
            "received": self.received, "accepted": self.accepted,
            "refused": len(self.refusals), "reasons": dict(sorted(reasons.items())),
            "errors": {str(r.index): {"reason": r.reason, "message": r.message}
                       for r in self.refusals},
        }


@dataclass(frozen=True)
class _Checked:
    index: int
    event: BeaconEvent
    claims: ListClaims


class Capture:
    """The capture layer of one SDK: its tokens, replay guard, rate limits and intake."""

    def __init__(self, sdk: RecSDK) -> None:
        self.sdk = sdk
        api = sdk.settings.api
        self.api = api
        self.tokens = Tokens.from_settings(sdk.settings)
        # in-process state gets a cache of its own: replay keys must not evict lists
        self._local = MemoryCache(sdk.settings.cache["max_entries"])
        self.shared: Cache = sdk.cache if sdk.cache.name == "redis" else self._local
        self.rate_limits = RateLimits(
            {"beacon": (api["beacon_rate_per_s"], api["beacon_burst"]),
             "widget": (api["widget_rate_per_s"], api["widget_burst"])},
            sdk.settings.redis_url)

    # ---- rate limits ---------------------------------------------------------------

    def wait_s(self, scope: str, client: str) -> float:
        """0.0 when ``client`` may go on in ``scope`` (the request counted), else seconds
        to wait; the refusal is counted (:class:`~recsdk.capture.ratelimit.RateLimits`)."""
        wait = self.rate_limits.wait_s(scope, _digest(client))
        if wait > 0:
            self.refused("rate_limited")
        return wait

    def refused(self, reason: str, n: int = 1) -> None:
        self.sdk.telemetry.beacon_refused.labels(reason=reason).inc(n)

    # ---- visitors ------------------------------------------------------------------

    def proven_visitor(self, token: Any) -> Visitor | None:
        """The visitor a visitor token (cookie value or page-given) proves, if it does."""
        if token is None:
            return None
        try:
            return self.tokens.read_visitor(token)
        except TokenError:
            return None

    # ---- intake --------------------------------------------------------------------

    def accept(self, rows: Sequence[Any], visitors: Iterable[Visitor]) -> IntakeReport:
        """Store the rows that pass every check as feedback; refuse and count the rest."""
        proven = {v.key for v in visitors}
        report = IntakeReport(received=len(rows))
        checked: list[_Checked] = []
        for index, row in enumerate(rows):
            try:
                event = read_event(row)
            except ValidationError as exc:
                report.refusals.append(Refusal(index, "bad_event", _first(exc.messages)))
                continue
            try:
                claims = self.tokens.read_list(event.token)
            except TokenError as exc:
                report.refusals.append(Refusal(index, exc.reason, str(exc)))
                continue
            if claims.visitor.key not in proven:
                report.refusals.append(Refusal(
                    index, "wrong_visitor", "The list was served to another visitor than "
                    "the one this request proves (visitor cookie or visitor token)."))
                continue
            checked.append(_Checked(index, event, claims))
        stored = self._store(self._on_served_lists(checked, report), report)
        report.accepted = len(stored)
        for c in stored:
            self.sdk.telemetry.beacon_accepted.labels(type=c.event.type).inc()
        for reason, n in Counter(r.reason for r in report.refusals).items():
            self.refused(reason, n)
        report.refusals.sort(key=lambda r: r.index)
        return report

    def _on_served_lists(self, checked: list[_Checked], report: IntakeReport
                         ) -> list[_Checked]:
        """The events whose list was served with that item at that position."""
        wanted = {c.claims.request_id for c in checked}
        info = self.sdk.store.request_info(wanted)
        if wanted - set(info):  # a list served a moment ago may still be queued
            self.sdk.request_log.flush()
            info = self.sdk.store.request_info(wanted)
        out = []
        for c in checked:
            served = info.get(c.claims.request_id)
            if served is None:
                report.refusals.append(Refusal(c.index, "unknown_list", (
                    "The list is not in the served-list log (never logged, or pruned).")))
                continue
            position = served["positions"].get(c.event.item_id)
            if position != c.event.position:
                where = ("is not in the list" if position is None
                         else f"is at position {position}, not {c.event.position}")
                report.refusals.append(Refusal(c.index, "not_in_list",
                                               f"Item {c.event.item_id!r} {where}."))
                continue
            out.append(c)
        return out

    def _store(self, checked: list[_Checked], report: IntakeReport) -> list[_Checked]:
        """Store the events not seen before; a failed write releases their replay keys
        (so the page's retry is not taken for a replay) and raises."""
        fresh: list[_Checked] = []
        keys: list[str] = []
        for c in checked:
            key = "seen:" + _digest(c.event.token, c.event.type, c.event.item_id,
                                    str(c.event.position))
            if not self._first_sighting(key):
                report.refusals.append(Refusal(c.index, "replay", (
                    "The same event (token, type, item, position) was already received.")))
                continue
            fresh.append(c)
            keys.append(key)
        if not fresh:
            return fresh
        rows = [{"request_id": c.claims.request_id, "item_id": c.event.item_id,
                 "type": c.event.type, "user_id": c.claims.visitor.user_id,
                 "value": c.event.value} for c in fresh]
        try:
            self.sdk.log_feedback(rows)
        except ValidationFailed:  # a list pruned between the check and the write
            self._forget(keys)
            for c in fresh:
                report.refusals.append(Refusal(c.index, "unknown_list",
                                               "The list was pruned meanwhile."))
            return []
        except Exception:
            self._forget(keys)
            raise
        return fresh

    def _first_sighting(self, key: str) -> bool:
        ttl = self.api["beacon_replay_ttl_s"]
        added = self.shared.add(key, b"1", ttl)
        if added is None:  # Redis down: this process remembers what it saw
            added = self._local.add(key, b"1", ttl)
        return bool(added)

    def _forget(self, keys: list[str]) -> None:
        self.shared.delete(*keys)
        self._local.delete(*keys)


def _digest(*parts: str) -> str:
    """A fixed-length key part for text of any length or character."""
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16).hexdigest()


def _first(messages: Any) -> str:
    """marshmallow's messages as one line: ``field: message; field: message``."""
    if isinstance(messages, dict):
        parts = []
        for name, value in messages.items():
            text = _first(value)
            parts.append(text if name == "_schema" else f"{name}: {text}")
        return "; ".join(parts)
    if isinstance(messages, list):
        return " ".join(_first(m) for m in messages)
    return str(messages)
