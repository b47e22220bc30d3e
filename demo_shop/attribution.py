"""Which recommended list led to a product, kept on the server, so that its add-to-cart
and purchase are credited to that list.

A recommended item's link carries the list's request id and the item's position
(``/p/<item>?rid=...&pos=...``). The product page checks them against recsdk's
served-list log: the list must have been served to this visitor (its anonymous visitor
id or its logged-in user) and must have shown this item at this position. Only then is
the pair kept, in the signed session, and later copied onto the cart line and the order
line. What the page sends is never trusted for money: the add-to-cart and purchase
feedback is posted from here with the shop's own prices (``sdk.log_feedback``), so a
forged ``rid`` in a URL credits nobody's list.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import session

from demo_shop.extensions import recsdk_ext
from recsdk.flask_ext import Identity

log = logging.getLogger(__name__)

#: Where the session keeps the sources of the products a visitor reached from lists.
SESSION_KEY = "sources"
#: The most products remembered (the session cookie must stay small), newest kept.
MAX_REMEMBERED = 30
#: How long a product stays credited to the list it was reached from (seconds): the
#: list token's lifetime, as the browser script's attribution.
TTL_S = 86_400.0
#: A served list's request id: 32 hex digits (recsdk.types.new_request_id).
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
#: Highest position read from a URL (a served list has at most 1000 items).
MAX_POSITION = 1000


@dataclass(frozen=True)
class Source:
    """The recommended list a product was reached from, and the item's place in it."""

    request_id: str
    position: int


class BadSource(ValueError):
    """A ``rid``/``pos`` pair that names no list of this visitor; the message says why."""


def parse(rid: str | None, pos: str | None) -> Source | None:
    """The pair from a product URL; None when there is none; BadSource when malformed."""
    if rid is None and pos is None:
        return None
    if rid is None or not REQUEST_ID.fullmatch(rid):
        raise BadSource(f"rid must be a served list's request id (32 hex digits), got "
                        f"{(rid or '')[:40]!r}")
    if pos is None or not pos.isascii() or not pos.isdigit() or len(pos) > 4 or not (
            1 <= int(pos) <= MAX_POSITION):
        raise BadSource(f"pos must be a whole number from 1 to {MAX_POSITION}, got "
                        f"{(pos or '')[:40]!r}")
    return Source(rid, int(pos))


def verify(source: Source, item_id: str, who: Identity) -> None:
    """Raise BadSource unless recsdk served that list to ``who`` with ``item_id`` at
    that position (the served-list log is flushed first when the list is not there
    yet: a list served a moment ago may still be queued)."""
    sdk = recsdk_ext.sdk()
    served = sdk.store.request_info([source.request_id]).get(source.request_id)
    if served is None:
        sdk.request_log.flush()
        served = sdk.store.request_info([source.request_id]).get(source.request_id)
    if served is None:
        raise BadSource(f"list {source.request_id} was never served (or was pruned)")
    if not _served_to(served, who):
        raise BadSource(f"list {source.request_id} was served to another visitor")
    position = served["positions"].get(item_id)
    if position != source.position:
        where = "is not in it" if position is None else f"is at position {position}"
        raise BadSource(f"item {item_id!r} {where} of list {source.request_id}, not at "
                        f"{source.position}")


def _served_to(served: Mapping[str, Any], who: Identity) -> bool:
    if who.session_id is not None and served.get("session_id") == who.session_id:
        return True
    return who.user_id is not None and served.get("user_id") == who.user_id


def remember(item_id: str, source: Source, now: float | None = None) -> None:
    """Keep ``source`` as the list ``item_id`` was reached from (the newest wins)."""
    now = time.time() if now is None else now
    kept = _kept(now)
    kept[item_id] = [source.request_id, source.position, int(now)]  # the cookie stays small
    newest = sorted(kept.items(), key=lambda kv: kv[1][2])[-MAX_REMEMBERED:]
    session[SESSION_KEY] = dict(newest)


def source_of(item_id: str, now: float | None = None) -> Source | None:
    """The list ``item_id`` was reached from in this session, if still credited."""
    found = _kept(time.time() if now is None else now).get(item_id)
    return None if found is None else Source(found[0], found[1])


def forget(item_ids: list[str]) -> None:
    """Drop the sources of products that were bought (a later purchase is new)."""
    kept = session.get(SESSION_KEY)
    if isinstance(kept, dict) and any(i in kept for i in item_ids):
        session[SESSION_KEY] = {k: v for k, v in kept.items() if k not in item_ids}


def _kept(now: float) -> dict[str, list[Any]]:
    """The session's sources that are well formed and not older than TTL_S."""
    stored = session.get(SESSION_KEY)
    if not isinstance(stored, dict):
        return {}
    out = {}
    for item_id, entry in stored.items():
        if (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[1], int) and isinstance(entry[2], int | float)
                and now - entry[2] <= TTL_S):
            out[str(item_id)] = entry
    return out


def credit(source: Source, item_id: str, kind: str, *, value: float | None,
           user_id: str | None) -> bool:
    """Post ``kind`` feedback (``add_to_cart``, ``purchase``, ``rating``) for
    ``item_id`` to the list ``source`` names, from the server; False (logged) when
    recsdk refuses or fails: the shop's own action stands either way."""
    row: dict[str, Any] = {"request_id": source.request_id, "item_id": item_id,
                           "type": kind, "value": value}
    if user_id is not None:  # else the list's own user (None for an anonymous list)
        row["user_id"] = user_id
    try:
        recsdk_ext.sdk().log_feedback([row])
    except Exception as exc:
        log.warning("could not credit %s of %r to list %s: %s: %s", kind, item_id,
                    source.request_id, type(exc).__name__, exc)
        return False
    return True
