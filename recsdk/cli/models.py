"""``recsdk models``: list training runs, activate one (rollback), prune old ones;
``recsdk worker``: retrain on a schedule, closing the loop from feedback to model.

Servers follow the active run by themselves (``[models] model_refresh_s``), so
activating a run here is all a rollback takes.
"""

from __future__ import annotations

import json
import threading
import time

import click

from recsdk import maintenance
from recsdk.cli.session import open_sdk, user_errors


def register(group: click.Group) -> None:
    group.add_command(models)
    group.add_command(worker)


@click.group()
def models() -> None:
    """Training runs in the model registry."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1))
@click.pass_context
def list_runs(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Runs, newest first; * marks the active one."""
    with open_sdk(ctx, serve_models=False) as sdk:
        runs = sdk.registry.list_runs(limit=limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs], sort_keys=True))
        return
    if not runs:
        click.echo("no model runs yet: run `recsdk train`")
        return
    click.echo(f"  {'run':<32}  {'status':<8}  {'created (UTC)':<19}  "
               f"{'users':>7}  {'items':>7}  {'events':>9}  config")
    for r in runs:
        st = r.stats
        click.echo(f"{'*' if r.active else ' '} {r.id:<32}  {r.status:<8}  "
                   f"{r.created_at:%Y-%m-%d %H:%M:%S}  {st.get('users', ''):>7}  "
                   f"{st.get('items', ''):>7}  {st.get('interactions', ''):>9}  "
                   f"{r.config_hash}")


@models.command("activate")
@click.argument("run_id")
@click.pass_context
def activate(ctx: click.Context, run_id: str) -> None:
    """Make RUN_ID (or a unique prefix of it) the run every server serves."""
    with open_sdk(ctx, serve_models=False) as sdk, user_errors():
        run = sdk.registry.activate(run_id)
        every = sdk.settings.models["model_refresh_s"]
    click.echo(f"activated run {run.id}; servers switch to it within {every:g} s")


@models.command("prune")
@click.option("--keep", type=click.IntRange(1), default=None,
              help="Ready runs to keep (default: [models] keep_runs).")
@click.pass_context
def prune(ctx: click.Context, keep: int | None) -> None:
    """Delete old runs and their artifact files (never the active run)."""
    with open_sdk(ctx, serve_models=False) as sdk:
        gone = sdk.registry.prune(keep or sdk.settings.models["keep_runs"])
    click.echo(f"deleted {len(gone)} run(s)" + (f": {', '.join(gone)}" if gone else ""))


@click.command()
@click.option("--every", "every_s", type=click.FloatRange(min=1), default=None,
              help="Seconds between trainings (default: [models] train_interval_s).")
@click.option("--once", is_flag=True, help="Train and prune once, then exit (for cron).")
@click.pass_context
def worker(ctx: click.Context, every_s: float | None, once: bool) -> None:
    """Retrain on a schedule: train, activate, prune old runs and served-list logs."""
    stop = threading.Event()
    with open_sdk(ctx, serve_models=False) as sdk:
        every = every_s or sdk.settings.models["train_interval_s"]
        while True:
            started = time.monotonic()
            if sdk.store.count_events() == 0:
                click.echo("no events stored yet; nothing to train on")
            else:
                report = sdk.fit()
                gone = sdk.registry.prune(sdk.settings.models["keep_runs"])
                click.echo(f"trained run {report.run_id} in {report.seconds:.2f} s; "
                           f"pruned {len(gone)} old run(s)")
            logs = maintenance.prune(sdk.store, sdk.settings)
            click.echo(f"pruned served lists older than the retention: "
                       f"{logs['requests']} list(s), {logs['impressions']} impression(s)")
            if once:
                return
            try:
                stop.wait(max(every - (time.monotonic() - started), 0))
            except KeyboardInterrupt:
                return
