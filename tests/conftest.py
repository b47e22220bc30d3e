"""Tests run this checkout's code, the built-in plugins included.

Installed, recsdk's ``plugins/`` folder is the package ``recsdk_plugins`` (setup.py maps
it). pyproject puts the checkout first on sys.path so that ``recsdk`` is the checkout's;
a renamed folder cannot be found that way, so it is loaded from the checkout here,
before any test imports it. Without this, an editable install made from another
checkout, or an installed wheel, would supply the plugins that these tests exercise.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

CHECKOUT_PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _import_checkout_plugins() -> None:
    spec = importlib.util.spec_from_file_location(
        "recsdk_plugins", CHECKOUT_PLUGINS / "__init__.py",
        submodule_search_locations=[str(CHECKOUT_PLUGINS)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["recsdk_plugins"] = module
    spec.loader.exec_module(module)


_import_checkout_plugins()
