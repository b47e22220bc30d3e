"""POST /api/v1/beacon: page events become feedback only on lists served to that visitor.

Each refusal path (forged, foreign, expired token; item not in the list; unknown type;
oversize; malformed; replay; rate limit) is refused, counted by reason, and stores
nothing; accepted events are feedback joined to the served list by its request id.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.capture.tokens import Tokens, Visitor
from recsdk.config import load_settings
from recsdk.errors import ConfigurationError
from tests.api.capture_helpers import SECRET, Shop, event, open_shop
from tests.postgres import fresh_postgres_database

REDIS_URL = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def shop(make_sdk: Callable[..., RecSDK]) -> Shop:
    return open_shop(make_sdk)


def test_accepted_events_are_feedback_joined_to_the_served_list(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    events = [event(served, 0, "impression"), event(served, 1, "impression"),
              event(served, 0, "click"), event(served, 0, "add_to_cart"),
              event(served, 0, "purchase", value=19.5), event(served, 1, "not_interested"),
              event(served, 2, "rating", value=4)]
    answer = shop.beacon(events)
    assert answer.status_code == 200
    assert answer.get_json() == {"received": 7, "accepted": 7, "refused": 0, "reasons": {},
                                 "errors": {}}
    rows = shop.feedback()
    assert [(r.type, r.item_id, r.position) for r in rows] == [
        (e["type"], e["item_id"], e["position"]) for e in events]
    assert {r.request_id for r in rows} == {served["request_id"]}
    assert {r.user_id for r in rows} == {"u1"}
    assert {r.variant for r in rows} == {served["variant"]}
    assert [r.value for r in rows if r.value is not None] == [19.5, 4.0]
    assert shop.accepted("impression") == 2 and shop.accepted("purchase") == 1


def test_an_anonymous_session_reports_through_its_cookie(shop: Shop) -> None:
    served = shop.serve(session_id="s-42")
    shop.prove(session_id="s-42")
    assert shop.beacon([event(served)]).get_json()["accepted"] == 1
    (row,) = shop.feedback()
    assert (row.request_id, row.user_id) == (served["request_id"], None)


def test_json_and_plain_text_bodies_are_both_read(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    assert shop.beacon([event(served, 0)], "application/json").get_json()["accepted"] == 1
    assert shop.beacon([event(served, 1)], "text/plain").get_json()["accepted"] == 1
    assert len(shop.feedback()) == 2


def test_a_visitor_token_in_the_body_proves_the_visitor_without_a_cookie(shop: Shop) -> None:
    """A widget on another site cannot rely on the cookie: its body carries the token."""
    served = shop.serve(user_id="u1")
    proof = shop.capture.tokens.visitor_token(Visitor(user_id="u1"))
    answer = shop.beacon({"visitor": proof, "events": [event(served)]}).get_json()
    assert answer["accepted"] == 1
    forged = proof[:-4] + ("AAAA" if not proof.endswith("AAAA") else "BBBB")
    answer = shop.beacon({"visitor": forged, "events": [event(served, 1)]}).get_json()
    assert answer["reasons"] == {"wrong_visitor": 1}


@pytest.mark.parametrize("mangle", ["signature", "payload", "other_secret", "garbage",
                                    "visitor_token"])
def test_a_forged_token_is_refused_and_counted(shop: Shop, mangle: str) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    good = served["token"]
    payload, _, signature = good.rpartition(".")
    other = Tokens("another-secret-of-enough-length-0123456789", 3600, 3600)
    forged = {
        "signature": f"{payload}.{signature[::-1]}",
        "payload": f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}"
                   f".{signature}",
        "other_secret": other.list_token(served["request_id"], Visitor(user_id="u1")),
        "garbage": "not.a.token",
        "visitor_token": shop.capture.tokens.visitor_token(Visitor(user_id="u1")),
    }[mangle]
    answer = shop.beacon([{**event(served), "token": forged}]).get_json()
    assert answer["accepted"] == 0
    assert answer["errors"]["0"]["reason"] == "bad_token"
    assert shop.refused("bad_token") == 1
    assert shop.feedback() == []


def test_another_visitors_list_is_refused(shop: Shop) -> None:
    """u2's page (its cookie) reporting on u1's list: a copied link or token."""
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u2")
    answer = shop.beacon([event(served)]).get_json()
    assert answer["errors"]["0"]["reason"] == "wrong_visitor"
    shop.client.delete_cookie("recsdk_visitor")
    answer = shop.beacon([event(served)]).get_json()  # no proof at all
    assert answer["errors"]["0"]["reason"] == "wrong_visitor"
    assert shop.refused("wrong_visitor") == 2
    assert shop.feedback() == []


def test_an_expired_token_is_refused(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    old = time.time() - shop.capture.tokens.list_ttl_s - 5
    stale = shop.capture.tokens.list_token(served["request_id"], Visitor(user_id="u1"), now=old)
    answer = shop.beacon([{**event(served), "token": stale}]).get_json()
    assert answer["errors"]["0"] == {"reason": "expired",
                                     "message": "The list token has expired."}
    assert shop.refused("expired") == 1
    assert shop.feedback() == []


def test_items_not_in_the_list_and_unknown_lists_are_refused(shop: Shop) -> None:
    served = shop.serve(user_id="u1", k=3)
    shop.prove(user_id="u1")
    shown = {i["item_id"] for i in served["items"]}
    absent = next(f"sku-{n}" for n in range(12) if f"sku-{n}" not in shown)
    never_served = shop.capture.tokens.list_token("f" * 32, Visitor(user_id="u1"))
    events = [{**event(served), "item_id": absent},
              {**event(served), "position": 3},  # shown, but elsewhere
              {**event(served), "token": never_served}]
    answer = shop.beacon(events).get_json()
    assert {k: v["reason"] for k, v in answer["errors"].items()} == {
        "0": "not_in_list", "1": "not_in_list", "2": "unknown_list"}
    assert "is not in the list" in answer["errors"]["0"]["message"]
    assert "is at position 1, not 3" in answer["errors"]["1"]["message"]
    assert shop.refused("not_in_list") == 2 and shop.refused("unknown_list") == 1
    assert shop.feedback() == []


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "view"}, "type"),
    ({"type": "Click"}, "type"),
    ({"position": 0}, "position"),
    ({"position": "1"}, "position"),
    ({"position": True}, "position"),
    ({"item_id": ""}, "item_id"),
    ({"item_id": "a\x00b"}, "item_id"),
    ({"value": "NaN"}, "value"),
    ({"type": "rating"}, "value"),
    ({"colour": "red"}, "colour"),
    ({"token": None}, "token"),
    ({"token": "x" * 5000}, "token"),
])
def test_a_malformed_event_is_refused_by_itself(shop: Shop, change: dict[str, Any],
                                                field: str) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    answer = shop.beacon([{**event(served, 0), **change}, event(served, 1)]).get_json()
    assert answer["accepted"] == 1  # the good neighbour is stored
    assert answer["errors"]["0"]["reason"] == "bad_event"
    assert field in answer["errors"]["0"]["message"]
    assert shop.refused("bad_event") == 1
    assert [r.item_id for r in shop.feedback()] == [served["items"][1]["item_id"]]


def test_an_event_that_is_not_an_object_is_refused(shop: Shop) -> None:
    shop.prove(user_id="u1")
    answer = shop.beacon([1, "click", None, [], {}]).get_json()
    assert answer["refused"] == 5
    assert {v["reason"] for v in answer["errors"].values()} == {"bad_event"}


HOSTILE_BODIES: list[tuple[bytes, int, str]] = [
    (b"", 400, "malformed"),
    (b"{", 400, "malformed"),
    (b"null", 400, "malformed"),
    (b"42", 400, "malformed"),
    (b'"events"', 400, "malformed"),
    (b"[]", 400, "malformed"),
    (b"{}", 400, "malformed"),
    (b'{"events": {}}', 400, "malformed"),
    (b'{"events": [], "visitor": null}', 400, "malformed"),
    (b'{"events": [{}], "extra": 1}', 400, "malformed"),
    (b'[{"value": NaN}]', 400, "malformed"),
    (b"[Infinity]", 400, "malformed"),
    (b"\xff\xfe[]", 400, "malformed"),
    (b"\xed\xa0\x80", 400, "malformed"),
    (b"[" * 100_000 + b"]" * 100_000, 413, "oversize"),  # over beacon_max_bytes
    (b"[" * 30_000 + b"]" * 30_000, 400, "malformed"),  # too deep for the parser
    (json.dumps([{"x": 1}] * 101).encode(), 413, "oversize"),  # over beacon_max_events
]


@pytest.mark.parametrize(("body", "status", "reason"), HOSTILE_BODIES,
                         ids=[repr(b[:20]) for b, _, _ in HOSTILE_BODIES])
def test_a_hostile_body_is_a_4xx_counted_never_a_5xx(shop: Shop, body: bytes, status: int,
                                                     reason: str) -> None:
    shop.prove(user_id="u1")
    for content_type in ("text/plain", "application/json"):
        answer = shop.beacon(body, content_type)
        assert answer.status_code == status, answer.get_data()[:300]
        assert answer.get_json()["message"]
    assert shop.refused(reason) == 2
    assert shop.feedback() == []


def test_other_content_types_are_refused(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data",
                         "application/xml"):
        answer = shop.beacon([event(served)], content_type)
        assert answer.status_code == 415
        assert "text/plain" in answer.get_json()["message"]
    assert shop.refused("unsupported_media") == 3


def test_a_replayed_event_is_stored_once(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    click = event(served)
    first = shop.beacon([click, click]).get_json()  # twice in one batch
    assert (first["accepted"], first["errors"]["1"]["reason"]) == (1, "replay")
    again = shop.beacon([click, event(served, 0, "impression")]).get_json()  # later
    assert again["accepted"] == 1 and again["errors"]["0"]["reason"] == "replay"
    assert [r.type for r in shop.feedback()] == ["click", "impression"]
    assert shop.refused("replay") == 2


def test_the_replay_window_is_the_setting(make_sdk: Callable[..., RecSDK]) -> None:
    shop = open_shop(make_sdk, api={"beacon_replay_ttl_s": 1})
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    assert shop.beacon([event(served)]).get_json()["accepted"] == 1
    time.sleep(1.2)
    assert shop.beacon([event(served)]).get_json()["accepted"] == 1


def test_a_burst_is_rate_limited_per_client_and_counted(make_sdk: Callable[..., RecSDK]
                                                        ) -> None:
    shop = open_shop(make_sdk, api={"beacon_burst": 3, "beacon_rate_per_s": 0.01})
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    codes = [shop.beacon([event(served, n % 3, "impression")]).status_code
             for n in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = shop.beacon([event(served)])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "Too many requests" in limited.get_json()["message"]
    assert shop.refused("rate_limited") == 3
    assert len(shop.feedback()) == 3  # nothing of the limited requests
    other = shop.app.test_client()  # another visitor from the same address has its own
    shop.prove(user_id="u2", client=other)
    assert shop.beacon([event(shop.serve(user_id="u2"))], client=other).status_code == 200


def test_refusals_are_in_the_metrics(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u2")
    shop.beacon([event(served)])
    shop.beacon(b"{")
    text = shop.client.get("/metrics").get_data(as_text=True)
    assert 'recsdk_beacon_refused_total{reason="wrong_visitor"} 1.0' in text
    assert 'recsdk_beacon_refused_total{reason="malformed"} 1.0' in text


def test_answers_are_readable_by_pages_of_other_sites(shop: Shop) -> None:
    answer = shop.beacon(b"{")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_a_shared_secret_lets_every_process_verify_tokens(make_sdk: Callable[..., RecSDK]
                                                          ) -> None:
    """Two SDKs on one database are two workers: a list one served is credited by the
    other when both have the secret, and refused when their secrets differ."""
    shop = open_shop(make_sdk)
    url = str(shop.sdk.store.engine.url)
    twin = make_sdk(database_url=url, api={"beacon_secret": SECRET})
    stranger = make_sdk(database_url=url, api={"beacon_secret": "x" * 40})
    served = shop.serve(user_id="u1")
    for other, expected in ((twin, 1), (stranger, 0)):
        client = create_app(other).test_client()
        shop.prove(user_id="u1", client=client)  # a cookie signed by the first process
        answer = shop.beacon([event(served, expected)], client=client).get_json()
        assert answer["accepted"] == expected, answer


def test_the_secret_comes_from_the_environment_and_must_be_long() -> None:
    secret = "s" * 40
    settings = load_settings({}, environ={"RECSDK_API_BEACON_SECRET": secret,
                                          "RECSDK_API_KEY": "k"})
    assert (settings.api["beacon_secret"], settings.api["api_key"]) == (secret, "k")
    with pytest.raises(ConfigurationError, match="beacon_secret"):
        load_settings({"api": {"beacon_secret": "short"}}, environ={})


def test_without_a_secret_a_process_secret_is_drawn_and_warned_about(
        make_sdk: Callable[..., RecSDK], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import recsdk.capture.tokens as tokens

    monkeypatch.setattr(tokens, "_process_secret", None)
    with caplog.at_level(logging.WARNING, logger="recsdk.capture.tokens"):
        first = Tokens.from_settings(make_sdk().settings)
        second = Tokens.from_settings(make_sdk().settings)
    assert sum("no [api] beacon_secret" in r.message for r in caplog.records) == 1
    token = first.list_token("r1", Visitor(user_id="u"))
    assert second.read_list(token).request_id == "r1"  # one key per process


@pytest.mark.redis
def test_replays_and_rate_limits_are_shared_through_redis(make_sdk: Callable[..., RecSDK]
                                                         ) -> None:
    """With Redis, a replay sent to another worker is caught, and one client's bucket
    is the same in every worker."""
    shop = open_shop(make_sdk, redis_url=REDIS_URL,
                     api={"beacon_burst": 2, "beacon_rate_per_s": 0.01})
    twin = make_sdk(database_url=str(shop.sdk.store.engine.url), redis_url=REDIS_URL,
                    api={"beacon_secret": SECRET, "beacon_burst": 2,
                         "beacon_rate_per_s": 0.01})
    other = create_app(twin).test_client()
    user = f"beacon-{uuid.uuid4().hex}"  # keys of its own: the server is shared
    served = shop.serve(user_id=user)
    shop.prove(user_id=user)
    shop.prove(user_id=user, client=other)
    assert shop.beacon([event(served)]).get_json()["accepted"] == 1
    replay = shop.beacon([event(served)], client=other).get_json()
    assert replay["errors"]["0"]["reason"] == "replay"
    assert shop.beacon([event(served, 1)], client=other).status_code == 429
    shop.sdk.cache.client.close()
    twin.cache.client.close()


@pytest.mark.postgres
def test_on_postgresql_accepted_and_hostile_events_alike(make_sdk: Callable[..., RecSDK]
                                                        ) -> None:
    """The same intake on PostgreSQL: ids with NUL or 300 characters are refused as
    events before any query, good ones stored and joined."""
    with fresh_postgres_database("recsdk_beacon") as url:
        shop = open_shop(make_sdk, database_url=url)
        served = shop.serve(user_id="u1")
        shop.prove(user_id="u1")
        answer = shop.beacon([event(served), {**event(served, 1), "item_id": "a\x00"},
                              {**event(served, 1), "item_id": "x" * 300},
                              event(served, 1, "purchase", value=1e300)]).get_json()
        assert answer["accepted"] == 2
        assert answer["reasons"] == {"bad_event": 2}
        assert [(r.type, r.request_id) for r in shop.feedback()] == [
            ("click", served["request_id"]), ("purchase", served["request_id"])]
        shop.sdk.close()
