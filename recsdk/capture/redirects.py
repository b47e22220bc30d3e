"""Where the logging redirect may send a browser: never anywhere a link can name.

An open redirect on the shop's domain would lend its name to phishing links, so the
target must be a path on this site (``/product/7?x=1``) or an http(s) URL on a host
listed in ``[api] redirect_hosts``. Browsers read ``\\`` as ``/`` and skip tabs and
newlines inside URLs, so ``/\\evil.example`` or ``/\\t/evil.example`` would leave the
site: any backslash, control character or space is refused, as is ``//host``
(scheme-relative) and user info (``https://shop@evil.example``).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from recsdk.rules import MAX_URL_LENGTH


class UnsafeTarget(ValueError):
    """The redirect target is not a path of this site nor on an allowed host."""


def safe_target(to: object, allowed_hosts: Collection[str]) -> str:
    """``to`` when the redirect may go there; UnsafeTarget naming why not otherwise."""
    if not isinstance(to, str) or not 0 < len(to) <= MAX_URL_LENGTH:
        raise UnsafeTarget(f"'to' must be a path or URL of 1 to {MAX_URL_LENGTH} characters.")
    if any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in to):
        raise UnsafeTarget("'to' must not contain spaces, control characters or '\\'.")
    if to.startswith("/"):
        if to.startswith("//"):
            raise UnsafeTarget("'to' must not start with '//' (a link to another host).")
        return to
    try:
        parts = urlsplit(to)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise UnsafeTarget(f"'to' is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("'to' must be a path on this site (starting with '/') or an "
                           "http(s) URL on a host in api.redirect_hosts.")
    if "@" in parts.netloc:
        raise UnsafeTarget("'to' must not carry user info ('user@host').")
    host = parts.hostname.lower() + (f":{port}" if port is not None else "")
    if host not in {h.lower() for h in allowed_hosts}:
        raise UnsafeTarget(f"'to' names host {host[:100]!r}, which is not in "
                           "api.redirect_hosts.")
    return to
