"""Parse ``--plugin``, ``--param`` and search-space arguments into plugin specs.

Shared by the command line and the benchmark scripts so both accept the same syntax:
``--plugin NAME`` or ``--plugin LABEL=NAME`` (to compare one plugin under several
parameter sets), ``--param KEY=VALUE`` (one plugin) or ``--param LABEL.KEY=VALUE``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from recsdk.config import PluginSettings
from recsdk.evaluation.offline import PluginSpec, scoring_plugins

#: Random-search distributions: ``KEY=NAME:LOW:HIGH``.
DISTRIBUTIONS = ("uniform", "loguniform", "int")


def _distribution(name: str, low: float, high: float) -> Any:
    from scipy import stats  # slow import: only for random search

    if name == "uniform":
        return stats.uniform(low, high - low)
    if name == "loguniform":
        return stats.loguniform(low, high)
    return stats.randint(int(low), int(high) + 1)


def parse_value(text: str) -> Any:
    """A JSON value when the text is one (``10``, ``0.5``, ``true``, ``null``), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _split_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value


def parse_plugin_specs(plugins: Sequence[str], params: Sequence[str] = ()) -> list[PluginSpec]:
    """Specs from ``--plugin`` and ``--param`` values (see the module docstring)."""
    if not plugins:
        raise ValueError("no plugin given: add --plugin NAME")
    entries: list[tuple[str, str]] = []
    for text in plugins:
        label, sep, name = text.partition("=")
        entries.append((label.strip(), name.strip()) if sep else (text.strip(), text.strip()))
    labels = [label for label, _ in entries]
    assigned: dict[str, dict[str, Any]] = {label: {} for label in labels}
    for text in params:
        key, value = _split_assignment(text, "--param")
        label, dot, field = key.rpartition(".")
        if not dot:
            if len(labels) > 1:
                raise ValueError(f"--param {text!r}: several plugins are given, so name the "
                                 f"one it is for as LABEL.{key}=VALUE (labels: {labels})")
            label, field = labels[0], key
        if label not in assigned:
            raise ValueError(f"--param {text!r}: no plugin labelled {label!r} "
                             f"(labels: {labels})")
        assigned[label][field] = parse_value(value)
    return [PluginSpec(label, name, assigned[label]) for label, name in entries]


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` into lists of values for a grid search."""
    grid: dict[str, list[Any]] = {}
    for text in assignments:
        key, values = _split_assignment(text, "--grid")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def parse_space(assignments: Sequence[str]) -> dict[str, Any]:
    """Random-search space: value lists, or ``KEY=uniform|loguniform|int:LOW:HIGH``."""
    space: dict[str, Any] = {}
    for text in assignments:
        key, value = _split_assignment(text, "--grid")
        name, _, bounds = value.partition(":")
        if name in DISTRIBUTIONS:
            parts = bounds.split(":")
            try:
                low, high = (float(p) for p in parts)
            except ValueError as exc:
                raise ValueError(f"--grid {text!r}: expected {name}:LOW:HIGH with numbers") \
                    from exc
            if not low < high:
                raise ValueError(f"--grid {text!r}: LOW must be below HIGH")
            space[key] = _distribution(name, low, high)
        else:
            space[key] = [parse_value(v) for v in value.split(",")]
    return space


def configured_specs(plugins: Sequence[PluginSettings]) -> list[PluginSpec]:
    """Specs for the configured plugins that can score users (rerankers are left out)."""
    scorers = set(scoring_plugins(only=[p.plugin for p in plugins])[0])
    return [PluginSpec(p.name, p.plugin, dict(p.params)) for p in plugins if p.plugin in scorers]
