"""List and visitor tokens: what they bind, and every way one fails to verify."""

from __future__ import annotations

import time

import pytest

from recsdk.capture.tokens import MAX_TOKEN_LENGTH, TokenError, Tokens, Visitor

SECRET = "unit-test-secret-0123456789abcdefghij"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(SECRET, list_ttl_s=600, visitor_ttl_s=3600)


def test_a_list_token_binds_request_visitor_and_expiry(tokens: Tokens) -> None:
    now = time.time()
    claims = tokens.read_list(tokens.list_token("req-1", Visitor(user_id="u:1"), now=now))
    assert claims.request_id == "req-1"
    assert claims.visitor == Visitor(user_id="u:1")  # ids may hold the separator
    assert claims.expires_at == int(now + 600)
    session = tokens.read_list(tokens.list_token("req-2", Visitor(session_id="s1")))
    assert session.visitor.key == "s:s1"


def test_a_visitor_is_a_user_or_a_session() -> None:
    assert Visitor.of("u1", "s1") == Visitor(user_id="u1")  # the user wins
    assert Visitor.of(None, "s1") == Visitor(session_id="s1")
    with pytest.raises(ValueError, match="user id or the session id"):
        Visitor.of(None, None)
    with pytest.raises(ValueError, match="exactly one"):
        Visitor(user_id="u", session_id="s")
    with pytest.raises(ValueError, match="not a visitor key"):
        Visitor.from_key("x:1")


def test_tampering_with_any_part_is_refused(tokens: Tokens) -> None:
    token = tokens.list_token("req-1", Visitor(user_id="u1"))
    for i in range(len(token)):
        # flip the character's top bit: a base64 digit's low bits may be padding
        at = B64.find(token[i])
        changed = token[:i] + (B64[at ^ 32] if at >= 0 else "A") + token[i + 1:]
        with pytest.raises(TokenError) as caught:
            tokens.read_list(changed)
        assert caught.value.reason == "bad_token"


def test_a_token_of_another_secret_or_kind_is_refused(tokens: Tokens) -> None:
    other = Tokens("another-secret-0123456789abcdefghijkl", 600, 3600)
    with pytest.raises(TokenError, match="signature"):
        tokens.read_list(other.list_token("req-1", Visitor(user_id="u1")))
    visitor = tokens.visitor_token(Visitor(user_id="u1"))
    with pytest.raises(TokenError, match="signature"):  # salts differ per kind
        tokens.read_list(visitor)
    with pytest.raises(TokenError, match="signature"):
        tokens.read_visitor(tokens.list_token("req-1", Visitor(user_id="u1")))
    assert tokens.read_visitor(visitor) == Visitor(user_id="u1")


def test_expired_tokens_are_refused(tokens: Tokens) -> None:
    past = time.time() - 601
    with pytest.raises(TokenError) as caught:
        tokens.read_list(tokens.list_token("req-1", Visitor(user_id="u1"), now=past))
    assert caught.value.reason == "expired"
    with pytest.raises(TokenError, match="expired"):
        tokens.read_visitor(tokens.visitor_token(Visitor(user_id="u1"), now=past - 3600))


@pytest.mark.parametrize("value", [None, 7, "", "x" * (MAX_TOKEN_LENGTH + 1), "a.b",
                                   "....", "\x00"])
def test_what_is_not_a_token_is_refused(tokens: Tokens, value: object) -> None:
    with pytest.raises(TokenError) as caught:
        tokens.read_list(value)
    assert caught.value.reason == "bad_token"


def test_a_signed_payload_of_another_layout_is_refused(tokens: Tokens) -> None:
    """Signed by us but not a list token's [request, visitor, expiry] (a future format)."""
    serializer = tokens._lists
    for payload in (["r", "u:1"], ["r", "u:1", "soon"], ["r", "nobody", 2**40],
                    ["", "u:1", 2**40], {"r": 1}):
        with pytest.raises(TokenError) as caught:
            tokens.read_list(serializer.dumps(payload))
        assert caught.value.reason == "bad_token"
