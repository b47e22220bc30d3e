"""``recsdk plugins``: which plugins are installed, which are enabled, what each hooks.

Answers "is my plugin found, configured the way I think, and wired to the hooks I
meant?" without touching the database. Enabled plugins are built exactly as the SDK
builds them, so a bad configuration fails here with the same message as at startup.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from recsdk.cli.session import settings_of, user_errors
from recsdk.config import Settings
from recsdk.hookspecs import PROJECT
from recsdk.plugin_manager import AvailablePlugin, PluginManager

#: The attribute pluggy's HookimplMarker puts on every ``@hookimpl`` function.
HOOKIMPL_ATTRIBUTE = f"{PROJECT}_impl"


def register(group: click.Group) -> None:
    group.add_command(plugins)


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``recsdk plugins``: an enabled configuration entry or an idle install."""

    name: str
    entry_point: str
    target: str
    distribution: str | None
    version: str | None
    enabled: bool
    weight: float | None = None
    timeout_ms: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


def declared_hooks(plugin_class: object) -> list[str]:
    """Hooks a plugin class implements, read from its ``@hookimpl`` markers."""
    hooks = set()
    for attribute in dir(plugin_class):
        options = getattr(getattr(plugin_class, attribute, None), HOOKIMPL_ATTRIBUTE, None)
        if isinstance(options, dict):
            hooks.add(options.get("specname") or attribute)
    return sorted(hooks)


def _version(plugin_class: object, available: AvailablePlugin) -> str | None:
    """The class's own ``version`` if it sets one, else its distribution's."""
    own = getattr(plugin_class, "version", None)
    return str(own) if isinstance(own, str) and own else available.version


def describe_plugins(settings: Settings) -> list[PluginInfo]:
    """Enabled plugins in configuration order, then installed ones nobody enabled."""
    manager = PluginManager(max_workers=1)
    try:
        manager.enable(settings.plugins)  # raises the core's message on a bad config
        rows = []
        for name, cfg in manager.settings.items():
            available = manager.available[cfg.plugin]
            instance = manager.get(name)
            get_params = getattr(instance, "get_params", None)
            params = get_params() if callable(get_params) else dict(cfg.params)
            rows.append(PluginInfo(
                name, cfg.plugin, available.target, available.distribution,
                _version(type(instance), available), True, cfg.weight, cfg.timeout_ms,
                dict(params), manager.hooks_of(name),
            ))
        used = {cfg.plugin for cfg in manager.settings.values()}
        for entry_point, available in sorted(manager.available.items()):
            if entry_point not in used:
                rows.append(_installed(entry_point, available))
        return rows
    finally:
        manager.close()


def _installed(entry_point: str, available: AvailablePlugin) -> PluginInfo:
    try:
        plugin_class = available.load()
    except Exception as exc:  # a broken third-party install must not hide the others
        return PluginInfo(entry_point, entry_point, available.target, available.distribution,
                          available.version, False,
                          error=f"cannot be loaded: {type(exc).__name__}: {exc}")
    return PluginInfo(entry_point, entry_point, available.target, available.distribution,
                      _version(plugin_class, available), False,
                      hooks=declared_hooks(plugin_class))


def _print(rows: list[PluginInfo]) -> None:
    for row in rows:
        if row.enabled:
            status = f"enabled, weight {row.weight:g}"
            if row.timeout_ms is not None:
                status += f", timeout {row.timeout_ms:g} ms"
        else:
            status = "installed, not enabled"
        click.echo(f"{row.name}  ({status})")
        click.echo(f"  entry point   {row.entry_point} = {row.target}")
        click.echo(f"  distribution  {row.distribution or '-'} {row.version or ''}".rstrip())
        if row.enabled:
            click.echo(f"  params        {json.dumps(row.params, sort_keys=True, default=str)}")
        if row.error:
            click.echo(f"  error         {row.error}")
        click.echo(f"  hooks         {', '.join(row.hooks) or 'none'}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed and enabled plugins with their settings and hooks."""
    settings = settings_of(ctx)
    with user_errors():
        rows = describe_plugins(settings)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], sort_keys=True, default=str))
    else:
        _print(rows)
