"""The REST API of recsdk: a Flask app factory with flask-smorest blueprints.

Serve it with ``recsdk serve`` (waitress), or mount ``create_app(sdk)`` in the shop's
own WSGI stack. Endpoints, payloads and status codes: ``docs/api.md``.
"""

from recsdk.api.app import close_app, create_app

__all__ = ["close_app", "create_app"]
