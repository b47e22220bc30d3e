"""``recsdk demo-data``: fill the configured database with a synthetic shop.

The quick start's first step: a deterministic shop (category tree, items with text,
users with planted tastes, funnel sessions) so that ``train`` and ``serve`` have
something real-looking to work on without any data of one's own.
"""

from __future__ import annotations

import click

from recsdk.cli.session import open_sdk, user_errors


def register(group: click.Group) -> None:
    group.add_command(demo_data)


@click.command("demo-data")
@click.option("--events", "n_events", type=click.IntRange(1_000, 10_000_000),
              default=50_000, show_default=True, help="How many behaviour events.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--force", is_flag=True,
              help="Store the shop even when the database already holds events.")
@click.pass_context
def demo_data(ctx: click.Context, n_events: int, seed: int, force: bool) -> None:
    """Generate a synthetic shop and store it (categories, items, users, events)."""
    from recsdk.data.synthetic import generate_shop

    with open_sdk(ctx) as sdk, user_errors(sdk.settings.database_url):
        stored = sdk.store.count_events()
        if stored and not force:
            click.echo(f"the database already holds {stored:,} events; nothing added "
                       "(--force adds the synthetic shop anyway)")
            return
        shop = generate_shop(n_events, seed=seed)
        counts = shop.write_to(sdk, progress=n_events >= 500_000)
        click.echo(
            f"stored {counts.categories} categories, {counts.items} items, "
            f"{counts.users} users, {counts.events:,} events "
            f"(e.g. user {shop.users['id'].iloc[0]}, item {shop.items['id'].iloc[0]})"
        )
