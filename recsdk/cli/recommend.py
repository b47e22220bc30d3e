"""``recsdk recommend`` and ``recsdk similar``: look at what the trained models serve.

For checking a model from a shell before it goes live, so the lists are not written to
the served-requests log (they were never shown to a shopper and would skew evaluation
of real impressions); ``similar`` is logged because the SDK offers no switch for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from recsdk.cli.session import open_sdk, safe_url
from recsdk.types import RecommendationResult

if TYPE_CHECKING:
    from recsdk.sdk import RecSDK

MAX_K = 1000


def register(group: click.Group) -> None:
    group.add_command(recommend)
    group.add_command(similar)


def _require_trained(sdk: RecSDK) -> None:
    if not sdk.trained:
        raise click.ClickException(
            f"no trained model in {safe_url(sdk.settings.database_url)}: "
            "run `recsdk train` first"
        )


def item_titles(sdk: RecSDK) -> dict[str, str]:
    """Titles of catalogue items that have one (empty titles are left out)."""
    frame = sdk.catalog.frame
    if frame is None or "title" not in frame:
        return {}
    return {str(i): str(t) for i, t in zip(frame["id"], frame["title"], strict=True)
            if isinstance(t, str) and t}


def _as_json(result: RecommendationResult, titles: Mapping[str, str],
             model_run: str | None) -> str:
    data = result.to_dict()
    for item in data["items"]:
        item["title"] = titles.get(item["item_id"])
    data["model_run"] = model_run
    return json.dumps(data, sort_keys=True)


def _print_table(result: RecommendationResult, titles: Mapping[str, str]) -> None:
    plugins = ", ".join(result.plugins) or "none"
    click.echo(f"request {result.request_id}  placement {result.placement}  "
               f"plugins {plugins}  degraded {'yes' if result.degraded else 'no'}")
    for failure in result.failures:
        click.echo(f"  failure: {failure}")
    if not result.items:
        click.echo("  (no items: everything was filtered out or nothing could be scored)")
        return
    show_titles = any(i.item_id in titles for i in result.items)
    width = max(len("item"), *(len(i.item_id) for i in result.items))
    source_width = max(len("source"), *(len(i.source or "-") for i in result.items))
    header = f"  {'#':>3}  {'item':<{width}}  {'score':>10}  {'source':<{source_width}}"
    click.echo(header + ("  title" if show_titles else ""))
    for item in result.items:
        line = (f"  {item.position:>3}  {item.item_id:<{width}}  {item.score:>10.4f}  "
                f"{item.source or '-':<{source_width}}")
        if show_titles:
            line += f"  {titles.get(item.item_id, '')}"
        click.echo(line.rstrip())


def _show(sdk: RecSDK, result: RecommendationResult, as_json: bool) -> None:
    titles = item_titles(sdk)
    if as_json:
        click.echo(_as_json(result, titles, sdk.model_run))
    else:
        _print_table(result, titles)


@click.command()
@click.argument("user")
@click.option("-k", type=click.IntRange(1, MAX_K), default=None,
              help="How many items (default: the placement's or pipeline's k).")
@click.option("--placement", default="default", show_default=True,
              help="Placement whose settings (weights, k) apply.")
@click.option("--session", "session_id", default=None,
              help="Session id whose recent activity counts too.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def recommend(ctx: click.Context, user: str, k: int | None, placement: str,
              session_id: str | None, as_json: bool) -> None:
    """Print the recommendations for USER."""
    with open_sdk(ctx) as sdk:
        _require_trained(sdk)
        if not sdk.history(user, session_id).item_ids:
            click.echo(f"note: user {user!r} has no recorded activity; "
                       "these are cold-start recommendations", err=True)
        result = sdk.recommend(user, session_id=session_id, placement=placement, k=k,
                               log_request=False)
        _show(sdk, result, as_json)


@click.command()
@click.argument("item")
@click.option("-k", type=click.IntRange(1, MAX_K), default=10, show_default=True,
              help="How many items.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def similar(ctx: click.Context, item: str, k: int, as_json: bool) -> None:
    """Print the items most similar to ITEM (the item itself excluded)."""
    with open_sdk(ctx) as sdk:
        _require_trained(sdk)
        if len(sdk.catalog) and item not in sdk.catalog.index:
            click.echo(f"note: item {item!r} is not in the catalogue; "
                       "showing the fallback's items", err=True)
        result = sdk.similar_items(item, k=k, log_request=False)
        _show(sdk, result, as_json)
