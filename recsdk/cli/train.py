"""``recsdk train``: fit the enabled plugins on every stored event and store the models.

Each call makes a new immutable run in the model registry and activates it: running
servers swap to it within ``[models] model_refresh_s`` without a restart, and
``recsdk recommend`` loads it. ``recsdk models`` lists runs and rolls back;
``recsdk worker`` retrains on a schedule.
"""

from __future__ import annotations

import json

import click

from recsdk.cli.session import open_sdk


def register(group: click.Group) -> None:
    group.add_command(train)


def format_bytes(size: int) -> str:
    """Human-readable artifact size (1 KiB = 1024 B)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def train(ctx: click.Context, as_json: bool) -> None:
    """Fit the enabled plugins on the stored events and save their state."""
    with open_sdk(ctx, serve_models=False) as sdk:
        if sdk.store.count_events() == 0:
            raise click.ClickException(
                "no events are stored yet, so there is nothing to train on; "
                "load some with `recsdk import` or the events API first"
            )
        report = sdk.fit()
        enabled = sdk.plugins.names()
        sdk.registry.prune(sdk.settings.models["keep_runs"])
    if as_json:
        click.echo(json.dumps({
            "run_id": report.run_id, "users": report.users, "items": report.items,
            "interactions": report.interactions, "plugins": report.plugins,
            "seconds": round(report.seconds, 3),
        }, sort_keys=True))
        return
    click.echo(f"trained run {report.run_id} in {report.seconds:.2f} s on "
               f"{report.users} users, {report.items} items, "
               f"{report.interactions} interactions")
    width = max(map(len, enabled), default=6)
    click.echo(f"  {'plugin':<{width}}  state")
    for name in enabled:
        size = report.plugins.get(name)
        state = format_bytes(size) if size is not None else "no learned state"
        click.echo(f"  {name:<{width}}  {state}")
