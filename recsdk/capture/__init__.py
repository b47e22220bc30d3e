"""Feedback capture from shop pages: signed list tokens, the beacon intake, the widget.

A page reports what the visitor saw and did (impressions, clicks, add-to-cart, ...) to
a public endpoint without an API key; signed tokens make sure only lists this server
served, to that visitor, are credited. The Flask side is :mod:`recsdk.api.capture`;
the browser side is ``recsdk/static/recsdk.js``. How a page integrates:
docs/feedback_capture.md.

Importing this package stays light (tokens only): :mod:`recsdk.capture.intake` needs
the SDK, which imports the telemetry that imports :mod:`recsdk.capture.events`.
"""

from recsdk.capture.tokens import ListClaims, TokenError, Tokens, Visitor

__all__ = ["ListClaims", "TokenError", "Tokens", "Visitor"]
