"""``recsdk import PATH``: load a data file, clean it and bulk-write it to the database.

The format is detected (CSV/TSV/JSON lines by extension, RecBole atomic files by
their extension or a directory of them, the clothing reviews CSV by its header), rows
are checked column by column with recsdk's rules, and events go in through the bulk
path (PostgreSQL COPY, SQLite executemany). Every skipped or changed row is reported.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from recsdk.cli.session import open_sdk, settings_of, user_errors

FORMATS = ("auto", "csv", "tsv", "jsonl", "recbole", "clothing-reviews")
KINDS = ("events", "items", "users", "categories")


def register(group: click.Group) -> None:
    group.add_command(import_data)


def parse_mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("customer=user_id", "sku=item_id")`` to a dict; a malformed pair is an error."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        for part in pair.split(","):
            if not part.strip():
                continue
            column, sep, field = part.partition("=")
            if not sep or not column.strip() or not field.strip():
                raise click.BadParameter(f"{part!r} is not column=field", param_hint="--mapping")
            if column.strip() in mapping:
                raise click.BadParameter(f"column {column.strip()!r} is mapped twice",
                                         param_hint="--mapping")
            mapping[column.strip()] = field.strip()
    return mapping


def detect(path: Path, fmt: str) -> str:
    """The loader to use: ``recbole``, ``clothing-reviews`` or ``table``."""
    from recsdk.data.loaders import is_clothing_reviews
    from recsdk.data.tables import detect_format

    if fmt in ("recbole", "clothing-reviews"):
        return fmt
    if not path.exists():
        raise click.BadParameter(f"{path} does not exist", param_hint="PATH")
    if path.is_dir():
        if fmt != "auto":
            raise click.BadParameter(f"{path} is a directory; only --format recbole reads "
                                     "directories", param_hint="PATH")
        return "recbole"
    if fmt == "auto":
        if path.suffix.lower() in {".inter", ".item", ".user"}:
            return "recbole"
        if detect_format(path) == "csv":
            with path.open(encoding="utf-8", newline="") as fh:
                header = fh.readline()
            import csv

            if is_clothing_reviews(next(csv.reader([header]), [])):
                return "clothing-reviews"
    return "table"


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="File format; auto detects it from the extension or the header.")
@click.option("--kind", type=click.Choice(KINDS), default="events", show_default=True,
              help="What the rows of a generic table are.")
@click.option("--mapping", "-m", multiple=True, metavar="COLUMN=FIELD",
              help="Rename a column to a recsdk field (repeat, or separate with commas).")
@click.option("--extra", type=click.Choice(["error", "keep", "ignore"]), default="error",
              show_default=True, help="Unmapped columns: refuse them, keep them in "
              "context/attributes, or leave them out (reported).")
@click.option("--default-type", metavar="TYPE",
              help="Event type for a table without a type column (e.g. purchase).")
@click.option("--clean/--no-clean", default=True, show_default=True,
              help="Remove duplicates and bots, assign sessions (rows that break recsdk's "
              "rules are always skipped and reported).")
@click.option("--strict", is_flag=True,
              help="Refuse the import (write nothing) if any row would be skipped.")
@click.option("--unknown-types", type=click.Choice(["keep", "drop", "error"]), default="keep",
              show_default=True, help="Events whose type has no configured weight.")
@click.option("--missing-timestamp", type=click.Choice(["drop", "now"]), default="drop",
              show_default=True, help="Events without a timestamp.")
@click.option("--session-gap", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Minutes of inactivity that start a new session.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Events per bulk write (one transaction each).")
@click.option("--report-json", type=click.Path(path_type=Path),
              help="Also write the load and cleaning reports to this JSON file.")
@click.option("--dry-run", is_flag=True, help="Load, check and clean, but write nothing.")
@click.pass_context
def import_data(ctx: click.Context, path: Path, fmt: str, kind: str, mapping: tuple[str, ...],
                extra: str, default_type: str | None, clean: bool, strict: bool,
                unknown_types: str, missing_timestamp: str, session_gap: float,
                chunk_size: int, report_json: Path | None, dry_run: bool) -> None:
    """Import PATH (a file or a directory of RecBole files) into the configured database."""
    from recsdk.data.cleaning import CleaningConfig, clean_events
    from recsdk.data.loaders import load_clothing_reviews, load_recbole, load_table

    loader = detect(path, fmt)
    columns = parse_mapping(mapping)
    if columns and loader != "table":
        raise click.BadParameter(f"--mapping applies to generic tables, not {loader} files",
                                 param_hint="--mapping")
    settings = settings_of(ctx)
    with user_errors(settings.database_url):
        if loader == "recbole":
            data = load_recbole(path)
        elif loader == "clothing-reviews":
            data = load_clothing_reviews(path)
        else:
            data = load_table(path, columns, kind,
                              extra=extra, default_type=default_type,
                              missing_timestamp=missing_timestamp)
        click.echo(data.report.format())
        reports: dict[str, Any] = {"load": data.report.to_dict()}
        if strict and data.report.dropped_rows:
            _write_report(report_json, reports)
            raise click.ClickException(f"--strict: {data.report.dropped_rows} rows would be "
                                       "skipped (see above); nothing was written")
        if clean and not data.events.empty:
            config = CleaningConfig(event_weights=dict(settings.event_weights),
                                    unknown_types=unknown_types,
                                    missing_timestamp=missing_timestamp,
                                    session_gap=timedelta(minutes=session_gap))
            data.events, cleaning = clean_events(data.events, config)
            click.echo("cleaned " + cleaning.format())
            reports["clean"] = cleaning.to_dict()
            if strict and cleaning.dropped_rows:
                _write_report(report_json, reports)
                raise click.ClickException(f"--strict: cleaning would drop "
                                           f"{cleaning.dropped_rows} events; nothing was "
                                           "written")
        _write_report(report_json, reports)
        if dry_run:
            click.echo(f"dry run: would write {len(data.categories)} categories, "
                       f"{len(data.items)} items, {len(data.users)} users, "
                       f"{len(data.events)} events")
            return
    with open_sdk(ctx) as sdk, user_errors(settings.database_url):
        counts = data.write_to(sdk, chunk_size=chunk_size, validate=False,
                               progress=len(data.events) > chunk_size)
    click.echo(f"imported into {_where(settings.database_url)}: "
               f"{counts.categories} categories, {counts.items} items, {counts.users} users, "
               f"{counts.events} events"
               + (f" ({counts.duplicate_events} events skipped: event_id already stored)"
                  if counts.duplicate_events else ""))


def _where(url: str) -> str:
    from recsdk.cli.session import safe_url

    return safe_url(url)


def _write_report(path: Path | None, reports: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(reports, indent=2, default=str), encoding="utf-8")
