"""Exceptions recsdk raises on purpose; each message names what is wrong."""

from __future__ import annotations


class RecSDKError(Exception):
    """Base of every error recsdk raises on purpose."""


class ConfigurationError(RecSDKError):
    """Settings or plugin configuration that cannot work; raised at startup."""


class PluginError(RecSDKError):
    """A plugin that cannot be loaded, configured or trained."""


class ValidationFailed(RecSDKError):
    """Input rejected as a whole; ``messages`` maps fields (or row numbers) to problems."""

    def __init__(self, messages: object, what: str = "input") -> None:
        self.messages = messages
        self.what = what
        super().__init__(f"invalid {what}: {messages}")


class NotTrainedError(RecSDKError):
    """A model is asked for something before it was fitted or loaded."""


class SchemaOutdated(RecSDKError):
    """The database's schema is not the one this recsdk needs; the message says what to run.

    Raised instead of migrating by processes that must not migrate (servers), so that a
    deploy migrates once, with ``recsdk db upgrade``, before new code serves.
    """
