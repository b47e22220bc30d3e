"""The base class of recsdk plugins: validated parameters, scikit-learn style.

A plugin is a class whose methods carry ``@hookimpl``. recsdk instantiates it once per
enabled configuration entry, with parameters validated by its ``Params`` schema, and
registers the instance under its configured name. ``__init__`` only stores
parameters; learned state lives in attributes ending with an underscore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from marshmallow import RAISE, Schema, ValidationError

from recsdk.errors import ConfigurationError


class NoParams(Schema):
    class Meta:
        unknown = RAISE


class Plugin:
    """Subclass this, set ``Params`` to a marshmallow schema and implement hooks."""

    #: marshmallow schema of the plugin's parameters; unknown keys are rejected.
    Params: ClassVar[type[Schema]] = NoParams
    #: Shown by ``recsdk plugins``; defaults to the installed distribution's version.
    version: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params

    @classmethod
    def from_config(cls, params: Mapping[str, Any], name: str | None = None) -> Self:
        """Validate ``params`` with ``Params`` and build the plugin."""
        try:
            loaded = cls.Params().load(dict(params))
        except ValidationError as exc:
            allowed = ", ".join(sorted(cls.Params().fields)) or "none"
            raise ConfigurationError(
                f"plugins.{name or cls.__name__}: invalid parameters {exc.messages}; "
                f"allowed parameters: {allowed}"
            ) from exc
        return cls(**loaded)

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def set_params(self, **params: Any) -> Self:
        merged = {**self.params, **params}
        self.params = dict(type(self).Params().load(merged))
        return self
