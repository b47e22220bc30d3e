"""A per-session token in every form, so another site cannot post to the shop's forms
(add to cart, check out, log in) in a visitor's name."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token (made on first use); templates put it in each form."""
    token = session.get(FIELD)
    if not isinstance(token, str):
        token = session[FIELD] = secrets.token_urlsafe(24)
    return token


def check_csrf() -> None:
    """``before_request`` of the shop's pages: a POST must carry the session's token."""
    if request.method != "POST":
        return
    sent = request.form.get(FIELD, "")
    expected = session.get(FIELD)
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(),
                                                                 expected.encode()):
        abort(400, "The form was not sent from a page of this shop, or it has expired "
                   "(missing or wrong csrf_token): reload the page and try again.")
