"""recsdk: recommendations inside an online shop's own process.

The host defines pluggy hooks for the five pipeline stages (collect event, extract
features, score, rerank, log feedback); each algorithm family is a plugin.
"""

from recsdk.hookspecs import hookimpl
from recsdk.plugin import Plugin

__version__ = "0.1.0"

__all__ = ["Plugin", "RecSDK", "__version__", "hookimpl"]


def __getattr__(name: str) -> object:
    # RecSDK pulls in storage and Flask-free runtime pieces; import it on first use so
    # that plugins importing ``recsdk.hookimpl`` stay light.
    if name == "RecSDK":
        from recsdk.sdk import RecSDK

        return RecSDK
    raise AttributeError(name)
