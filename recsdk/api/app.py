"""The app factory: a Flask app serving one RecSDK over REST.

The SDK lives in ``app.extensions["recsdk"]``. An app that built its SDK owns it and
:func:`close_app` closes it (engine, worker threads, request log); an SDK passed in
stays the caller's to close.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from recsdk import __version__
from recsdk.api.admin import make_admin_blueprint
from recsdk.api.auth import SECURITY_SCHEMES
from recsdk.api.capture import BEACON_SCHEMAS, make_capture_blueprint
from recsdk.api.errors import RecApi, register_error_handlers
from recsdk.api.extension import EXTENSION, OWNED, init_sdk
from recsdk.api.ingest import make_ingest_blueprint
from recsdk.api.ops import make_ops_blueprint
from recsdk.api.serving import make_serving_blueprint
from recsdk.schemas import (
    CategorySchema,
    EventSchema,
    FeedbackSchema,
    ItemSchema,
    RuleField,
    UserSchema,
)
from recsdk.sdk import RecSDK

#: Request body schemas, by their name in the OpenAPI document.
BODY_SCHEMAS = {"Event": EventSchema, "Item": ItemSchema, "User": UserSchema,
                "Category": CategorySchema, "Feedback": FeedbackSchema}


def create_app(sdk: RecSDK | None = None,
               config: Mapping[str, Any] | str | None = None) -> Flask:
    """Build the REST app around ``sdk``, or around a new ``RecSDK(config)``.

    ``config`` is what :class:`RecSDK` takes (a dict or a TOML path; ``RECSDK_*``
    variables apply); give either ``sdk`` or ``config``, not both.
    """
    if sdk is not None and config is not None:
        raise ValueError("create_app: give either an SDK or the config to build one, not both")
    owned = sdk is None
    sdk = RecSDK(config) if sdk is None else sdk
    app = Flask("recsdk.api")
    app.config.update(
        API_TITLE="recsdk",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=sdk.settings.api["max_content_length"],
    )
    init_sdk(app, sdk, owned)
    api = RecApi(app)
    api.register_field(RuleField, None, None)  # each rule field documents itself
    for name, schema in {**BODY_SCHEMAS, **BEACON_SCHEMAS}.items():
        api.spec.components.schema(name, schema=schema)
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    register_error_handlers(app)
    api.register_blueprint(make_ingest_blueprint(sdk.settings.api["max_batch"]))
    api.register_blueprint(make_serving_blueprint())
    api.register_blueprint(make_admin_blueprint())
    api.register_blueprint(make_ops_blueprint())
    api.register_blueprint(make_capture_blueprint())
    return app


def close_app(app: Flask) -> None:
    """Release what the app holds: closes its SDK if ``create_app`` built it."""
    if app.extensions.pop(OWNED, False):
        app.extensions[EXTENSION].close()
