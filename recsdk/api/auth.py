"""The API key that guards writes: ingestion and admin endpoints, not reads.

When ``api.api_key`` is set, a request must carry it in ``X-API-Key`` or as
``Authorization: Bearer <key>``. The comparison takes constant time so that response
timing does not reveal how much of a guessed key was right.
"""

from __future__ import annotations

import hmac

from flask import request

from recsdk.api.errors import fail
from recsdk.api.extension import current_sdk

#: OpenAPI security requirement of guarded operations (either header will do).
SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerKey": []}]

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BearerKey": {"type": "http", "scheme": "bearer"},
}

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="recsdk"'}


def presented_key() -> str | None:
    """The key the client sent, from ``X-API-Key`` or a Bearer ``Authorization``."""
    key = request.headers.get("X-API-Key")
    if key is not None:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_api_key() -> None:
    """``before_request`` of guarded blueprints: 401 unless the configured key is sent."""
    expected = current_sdk().settings.api["api_key"]
    if not expected:
        return
    given = presented_key()
    if given is None:
        fail(401, "Missing API key: send it in the X-API-Key header "
                  "(or as 'Authorization: Bearer <key>').", headers=_CHALLENGE)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        fail(401, "Wrong API key.", headers=_CHALLENGE)
