"""What the feedback-capture tests share: a trained little shop, its app, and ways to
act as a page (serve a list, prove a visitor, post a beacon) and read what was stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.api.capture import EXTENSION
from recsdk.capture.intake import Capture
from recsdk.capture.tokens import Visitor
from recsdk.storage import models

SECRET = "test-beacon-secret-0123456789abcdef"
COOKIE = "recsdk_visitor"
#: Titles a widget must show as text: markup, a script, quotes.
HOSTILE_TITLE = '<img src=x onerror="alert(1)"><script>alert(2)</script>&amp;"\''


@dataclass
class Shop:
    sdk: RecSDK
    app: Flask
    client: FlaskClient

    @property
    def capture(self) -> Capture:
        with self.app.app_context():
            from recsdk.api.capture import current_capture
            current_capture()
        return self.app.extensions[EXTENSION]

    def serve(self, user_id: str | None = None, session_id: str | None = None,
              k: int = 5) -> dict[str, Any]:
        """A list from the REST endpoint, its log written (as a page would have it)."""
        who = {"user_id": user_id} if user_id is not None else {"session_id": session_id}
        answer = self.client.get("/api/v1/recommendations", query_string={**who, "k": k})
        assert answer.status_code == 200, answer.get_json()
        self.sdk.request_log.flush()
        return answer.get_json()

    def prove(self, user_id: str | None = None, session_id: str | None = None,
              client: FlaskClient | None = None) -> str:
        """Give the client the visitor cookie of that visitor; the cookie's value."""
        token = self.capture.tokens.visitor_token(Visitor.of(user_id, session_id))
        (client or self.client).set_cookie(COOKIE, token)
        return token

    def beacon(self, body: Any, content_type: str = "text/plain;charset=UTF-8",
               client: FlaskClient | None = None) -> TestResponse:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return (client or self.client).post("/api/v1/beacon", data=data,
                                            content_type=content_type)

    def feedback(self) -> list[Any]:
        fb = models.Feedback.__table__
        with self.sdk.store.engine.connect() as conn:
            return list(conn.execute(select(fb).order_by(fb.c.id)).all())

    def refused(self, reason: str) -> float:
        return self.sdk.telemetry.value("recsdk_beacon_refused", reason=reason)

    def accepted(self, kind: str) -> float:
        return self.sdk.telemetry.value("recsdk_beacon_accepted", type=kind)


def event(list_answer: dict[str, Any], index: int = 0, kind: str = "click",
          **extra: Any) -> dict[str, Any]:
    """An event on the ``index``-th item of a served list, as the script sends it."""
    item = list_answer["items"][index]
    return {"token": list_answer["token"], "type": kind, "item_id": item["item_id"],
            "position": item["position"], **extra}


def open_shop(make_sdk: Callable[..., RecSDK], api: dict[str, Any] | None = None,
              **config: Any) -> Shop:
    """A shop of 12 items (titles, prices, images) bought by 30 users, trained."""
    sdk = make_sdk(api={"beacon_secret": SECRET, **(api or {})},
                   pipeline={"timeout_ms": 10_000}, **config)
    sdk.upsert_items([{"id": f"sku-{n}", "title": f"Item {n}", "price": 10.0 + n,
                       "original_price": 20.0 + n, "image_url": f"/img/sku-{n}.png",
                       "attributes": {"url": f"/p/sku-{n}"}} for n in range(12)])
    sdk.track_many([{"user_id": f"u{u}", "item_id": f"sku-{(u * 5 + j) % 12}",
                     "type": "purchase"} for u in range(30) for j in range(2)])
    sdk.fit()
    app = create_app(sdk)
    return Shop(sdk, app, app.test_client())
