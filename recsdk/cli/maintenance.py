"""``recsdk prune``: delete served-list logs past their retention period;
``recsdk prune-events``: drop whole months of events (PostgreSQL partitions).

Works on the database alone (no plugins, no models), so that cron can run it beside
the serving processes; the periodic worker calls the same function,
:func:`recsdk.maintenance.prune`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from recsdk.cli.session import settings_of, user_errors


def register(group: click.Group) -> None:
    group.add_command(prune)
    group.add_command(prune_events)


@click.command()
@click.option("--older-than", "older_than_days", type=click.FloatRange(min=0), default=None,
              metavar="DAYS",
              help="Delete lists older than DAYS (default: [retention] requests_days, 30).")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="The counts as one JSON object.")
@click.pass_context
def prune(ctx: click.Context, older_than_days: float | None, dry_run: bool,
          as_json: bool) -> None:
    """Delete served lists (requests and their impressions) past the retention period.

    Lists that received feedback are kept: the feedback refers to them.
    """
    from recsdk import maintenance
    from recsdk.storage.store import Store

    settings = settings_of(ctx)
    with user_errors(settings.database_url):
        store = Store(settings.database_url)
        try:
            store.ensure_schema(migrate=False)  # never migrates beside running servers
            now = datetime.now(UTC)
            before = maintenance.retention_cutoff(settings, now, older_than_days)
            counts = maintenance.prune(store, settings, now=now,
                                       older_than_days=older_than_days, dry_run=dry_run)
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps({**counts, "before": before.isoformat(), "dry_run": dry_run},
                              sort_keys=True))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {counts['requests']:,} served lists and {counts['impressions']:,} "
               f"impressions created before {before:%Y-%m-%d %H:%M:%S} UTC")


@click.command("prune-events")
@click.option("--older-than", "older_than_days", type=click.FloatRange(min=0), required=True,
              metavar="DAYS", help="Drop the months of events that ended more than DAYS "
              "ago (whole months only: the cut-off's own month stays).")
@click.option("--dry-run", is_flag=True, help="Only list the months and count their events.")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_context
def prune_events(ctx: click.Context, older_than_days: float, dry_run: bool,
                 as_json: bool) -> None:
    """Drop months of events past the retention period (PostgreSQL).

    Events are partitioned by month; a month entirely older than the cut-off is
    detached and dropped at once, with its idempotency keys. Train again afterwards:
    models trained on the dropped months still reflect them.
    """
    from recsdk import maintenance
    from recsdk.storage.store import Store

    settings = settings_of(ctx)
    with user_errors(settings.database_url):
        store = Store(settings.database_url)
        try:
            store.ensure_schema(migrate=False)  # never migrates beside running servers
            before, dropped = maintenance.prune_events(
                store, older_than_days=older_than_days, dry_run=dry_run)
        finally:
            store.close()
    events = sum(p.events for p in dropped)
    if as_json:
        click.echo(json.dumps({
            "before": before.isoformat(), "dry_run": dry_run, "events": events,
            "partitions": [{"name": p.name, "start": p.start.isoformat(),
                            "end": p.end.isoformat(), "events": p.events} for p in dropped],
        }, sort_keys=True))
        return
    verb = "would drop" if dry_run else "dropped"
    click.echo(f"{verb} {len(dropped)} monthly partitions ({events:,} events) ending by "
               f"{before:%Y-%m-%d %H:%M:%S} UTC")
    for p in dropped:
        click.echo(f"  {p.name}: {p.start:%Y-%m-%d} to {p.end:%Y-%m-%d}, {p.events:,} events")
