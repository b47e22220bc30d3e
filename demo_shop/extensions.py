"""The extension objects the shop's modules share (Flask's one-object-per-app pattern):
created here with no app, bound to each app by :func:`demo_shop.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine

from demo_shop.catalogue import Catalogue
from recsdk.flask_ext import RecSDKExtension

#: recsdk in this shop: the SDK, the REST API under /api/v1 and the view helpers.
recsdk_ext = RecSDKExtension()

SHOP = "demo_shop"


@dataclass(frozen=True)
class Shop:
    """The shop's own state per app: its database engine and catalogue queries."""

    engine: Engine
    catalogue: Catalogue


def current_shop() -> Shop:
    return current_app.extensions[SHOP]
