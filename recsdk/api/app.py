"""The app factory: a Flask app serving one RecSDK over REST.

The SDK lives in ``app.extensions["recsdk"]``. An app that built its SDK owns it and
:func:`close_app` closes it (engine, worker threads, request log); an SDK passed in
stays the caller's to close. :func:`register_api` is what both this app and the Flask
extension (:mod:`recsdk.flask_ext`, the API inside a shop's own app) register.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

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
#: Prefix of the API's blueprint names and flask-smorest settings inside a shop's app.
MOUNTED_PREFIX = "RECSDK_"


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
    register_api(app, sdk)
    return app


def register_api(app: Flask, sdk: RecSDK, *, mounted: bool = False) -> RecApi:
    """Register the REST blueprints, their OpenAPI document and error answers on ``app``.

    One function for both hosts of the API. The stand-alone app (``mounted=False``,
    :func:`create_app`) is the API: its errors are JSON everywhere and its body limit
    is the app's. Mounted in a shop's app (:class:`recsdk.flask_ext.RecSDKExtension`),
    the API must not change the shop's pages: blueprint names get a ``recsdk_`` prefix
    (a shop's own ``admin`` keeps its name), flask-smorest reads its settings under
    ``RECSDK_`` (``RECSDK_OPENAPI_URL_PREFIX``...), and JSON error answers and the body
    limit (``api.max_content_length``) apply inside the API's blueprints only.
    """
    if mounted:
        for key, value in {"API_TITLE": "recsdk", "API_VERSION": __version__,
                           "OPENAPI_VERSION": "3.0.3", "OPENAPI_URL_PREFIX": "/api",
                           "OPENAPI_JSON_PATH": "openapi.json"}.items():
            app.config.setdefault(f"{MOUNTED_PREFIX}{key}", value)
        api: RecApi = MountedRecApi(app, config_prefix=MOUNTED_PREFIX)
    else:
        api = RecApi(app)
        register_error_handlers(app)
    api.register_field(RuleField, None, None)  # each rule field documents itself
    for name, schema in {**BODY_SCHEMAS, **BEACON_SCHEMAS}.items():
        api.spec.components.schema(name, schema=schema)
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    blueprints = (make_ingest_blueprint(sdk.settings.api["max_batch"]),
                  make_serving_blueprint(), make_admin_blueprint(), make_ops_blueprint(),
                  make_capture_blueprint())
    for blp in blueprints:
        if not mounted:
            api.register_blueprint(blp)
            continue
        register_error_handlers(blp)
        blp.register_error_handler(HTTPException, api.handle_http_exception)
        blp.before_request(_body_limit(sdk.settings.api["max_content_length"]))
        api.register_blueprint(blp, name=f"{MOUNTED_PREFIX.lower()}{blp.name}")
    return api


class MountedRecApi(RecApi):
    """The API inside a shop's app: its error handlers go on its own blueprints
    (:func:`register_api`), never on the app, whose pages keep their own."""

    def _register_error_handlers(self) -> None:
        return None


def _body_limit(limit: int) -> Callable[[], None]:
    """``before_request`` that applies ``api.max_content_length`` to one request."""
    def apply_limit() -> None:
        request.max_content_length = limit
    return apply_limit


def close_app(app: Flask) -> None:
    """Release what the app holds: closes its SDK if ``create_app`` built it."""
    if app.extensions.pop(OWNED, False):
        app.extensions[EXTENSION].close()
