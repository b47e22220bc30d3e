"""Where an app keeps its RecSDK: ``app.extensions``, the Flask-extension way.

Views find the SDK through the current app, never through a module global, so
several apps (tests, multi-tenant hosts) can live in one process.
"""

from __future__ import annotations

from flask import Flask, current_app

from recsdk.sdk import RecSDK

EXTENSION = "recsdk"
#: True when the app built its SDK itself and so must close it (see ``close_app``).
OWNED = "recsdk.owned"


def init_sdk(app: Flask, sdk: RecSDK, owned: bool) -> None:
    app.extensions[EXTENSION] = sdk
    app.extensions[OWNED] = owned


def current_sdk() -> RecSDK:
    """The SDK of the app handling the current request."""
    return current_app.extensions[EXTENSION]

