"""Signed tokens that let a browser report on a list without an API key.

A **list token** binds a served list (its request id) to the visitor it was served to
and an expiry; a **visitor token** proves who the visitor is (it is the value of the
visitor cookie, or what a host page passes to the widget). Both are JSON signed with
HMAC-SHA256 by itsdangerous under ``[api] beacon_secret``, each kind with its own salt,
so that neither can stand in for the other. A page can read its tokens but cannot
change the request id, the visitor or the expiry inside them without the secret.

Unset, the secret is drawn at random once per process (and a warning logged): tokens
then stop verifying when the process restarts, and are refused by other processes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from recsdk.config import Settings

log = logging.getLogger(__name__)

LIST_SALT = "recsdk.list-token"
VISITOR_SALT = "recsdk.visitor-token"
#: Longest token text read at all (a list token is about 120 characters).
MAX_TOKEN_LENGTH = 2048

_process_secret: str | None = None
_secret_lock = threading.Lock()


class TokenError(Exception):
    """A token that does not verify; ``reason`` is ``bad_token`` or ``expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Visitor:
    """Whom a list was served to: a shop's user id, or an anonymous session id."""

    user_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.session_id is None):
            raise ValueError("a visitor is a user id or a session id (exactly one)")

    @classmethod
    def of(cls, user_id: str | None, session_id: str | None) -> Visitor:
        """The visitor a list for (user_id, session_id) is served to: the user if any."""
        if user_id is not None:
            return cls(user_id=str(user_id))
        if session_id is not None:
            return cls(session_id=str(session_id))
        raise ValueError("a list token needs the user id or the session id it was served to")

    @property
    def key(self) -> str:
        """``u:<user id>`` or ``s:<session id>``: what tokens carry."""
        return f"u:{self.user_id}" if self.user_id is not None else f"s:{self.session_id}"

    @classmethod
    def from_key(cls, key: str) -> Visitor:
        kind, _, ident = key.partition(":")
        if kind == "u" and ident:
            return cls(user_id=ident)
        if kind == "s" and ident:
            return cls(session_id=ident)
        raise ValueError(f"not a visitor key: {key[:80]!r}")


@dataclass(frozen=True)
class ListClaims:
    """What a verified list token says."""

    request_id: str
    visitor: Visitor
    expires_at: float


def process_secret() -> str:
    """This process's random signing key, drawn on first use (warned about once)."""
    global _process_secret
    with _secret_lock:
        if _process_secret is None:
            _process_secret = secrets.token_urlsafe(32)
            log.warning(
                "recsdk: no [api] beacon_secret (RECSDK_API_BEACON_SECRET) is set: list "
                "and visitor tokens are signed with a key drawn for this process only, so "
                "pages served before a restart, or by another process or worker, report "
                "feedback that is refused. Set a shared secret of %d+ characters.", 32)
        return _process_secret


class Tokens:
    """Issues and verifies list and visitor tokens under one secret."""

    def __init__(self, secret: str, list_ttl_s: float, visitor_ttl_s: float) -> None:
        signer = {"digest_method": hashlib.sha256}
        self._lists = URLSafeSerializer(secret, salt=LIST_SALT, signer_kwargs=signer)
        self._visitors = URLSafeSerializer(secret, salt=VISITOR_SALT, signer_kwargs=signer)
        self.list_ttl_s = list_ttl_s
        self.visitor_ttl_s = visitor_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        api = settings.api
        return cls(api["beacon_secret"] or process_secret(), api["beacon_token_ttl_s"],
                   api["visitor_ttl_s"])

    # ---- lists ---------------------------------------------------------------------

    def list_token(self, request_id: str, visitor: Visitor, now: float | None = None) -> str:
        """A token for the list ``request_id`` served to ``visitor``."""
        expires = int((time.time() if now is None else now) + self.list_ttl_s)
        return self._lists.dumps([request_id, visitor.key, expires])

    def read_list(self, token: Any, now: float | None = None) -> ListClaims:
        """The claims of a list token; TokenError when forged, malformed or expired."""
        request_id, visitor, expires = self._read(self._lists, token, "list", now)
        if not isinstance(request_id, str) or not request_id:
            raise TokenError("bad_token", "The list token names no request.")
        return ListClaims(request_id, visitor, expires)

    # ---- visitors ------------------------------------------------------------------

    def visitor_token(self, visitor: Visitor, now: float | None = None,
                      ttl_s: float | None = None) -> str:
        """A token proving ``visitor`` (the visitor cookie's value), valid ``ttl_s``
        (default ``[api] visitor_ttl_s``; the Flask extension's cookie passes its own)."""
        ttl = self.visitor_ttl_s if ttl_s is None else ttl_s
        expires = int((time.time() if now is None else now) + ttl)
        return self._visitors.dumps(["v", visitor.key, expires])

    def read_visitor(self, token: Any, now: float | None = None) -> Visitor:
        """The visitor a visitor token proves; TokenError when it does not verify."""
        kind, visitor, _ = self._read(self._visitors, token, "visitor", now)
        if kind != "v":
            raise TokenError("bad_token", "Not a visitor token.")
        return visitor

    @staticmethod
    def _read(serializer: URLSafeSerializer, token: Any, what: str,
              now: float | None) -> tuple[Any, Visitor, float]:
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise TokenError("bad_token", f"The {what} token must be text of 1 to "
                                          f"{MAX_TOKEN_LENGTH} characters.")
        try:
            claims = serializer.loads(token)
        except BadSignature as exc:
            raise TokenError("bad_token", f"The {what} token's signature does not "
                                          "verify (forged, altered or from another "
                                          "secret).") from exc
        except Exception as exc:  # signed by us, so only a changed format gets here
            raise TokenError("bad_token", f"The {what} token cannot be read.") from exc
        if (not isinstance(claims, list) or len(claims) != 3
                or not isinstance(claims[1], str)
                or not isinstance(claims[2], int) or isinstance(claims[2], bool)):
            raise TokenError("bad_token", f"The {what} token has an unknown layout.")
        try:
            visitor = Visitor.from_key(claims[1])
        except ValueError as exc:
            raise TokenError("bad_token", f"The {what} token names no visitor.") from exc
        if claims[2] < (time.time() if now is None else now):
            raise TokenError("expired", f"The {what} token has expired.")
        return claims[0], visitor, float(claims[2])
