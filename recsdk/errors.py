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
