"""The ``recsdk`` command line. Each area's commands live in their own module."""

from __future__ import annotations

import importlib
import logging

import click

from recsdk import __version__

#: Modules that each define ``register(group)``, adding their commands.
COMMAND_MODULES: tuple[str, ...] = ("db", "train", "recommend", "plugins", "serve", "evaluate",
                                   "importer", "demo", "models", "maintenance", "experiments",
                                   "evaluate_policy", "export")


@click.group()
@click.version_option(__version__, prog_name="recsdk")
@click.option("--config", "config_path", envvar="RECSDK_CONFIG", type=click.Path(),
              help="TOML settings file (default: $RECSDK_CONFIG).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """recsdk: recommendations inside your shop, on your own database."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config": config_path}


for _name in COMMAND_MODULES:
    importlib.import_module(f"recsdk.cli.{_name}").register(cli)


def main() -> None:
    cli(prog_name="recsdk")
