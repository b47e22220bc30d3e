"""``python -m demo_shop``: the storefront with data and trained models, on one command.

Brings recsdk's schema up to date and creates the shop's tables (both at app start),
fills an empty shop with the synthetic catalogue (and the clothing one with
``--clothing``), trains when there is no model yet, then serves the shop and recsdk's
REST API (``/api/v1``) on waitress until Ctrl-C or SIGTERM. Settings: ``config/demo.toml``
(or ``$RECSDK_CONFIG``) and the ``RECSDK_*`` variables, as for the ``recsdk`` command;
the session key from ``DEMO_SHOP_SECRET_KEY``, else from ``--key-file`` (made once).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from demo_shop.app import close_shop, create_app
from demo_shop.bootstrap import prepare
from demo_shop.extensions import recsdk_ext
from demo_shop.keys import KeyFileError, kept_key
from recsdk.cli.serve import exit_on_sigterm, listen_addresses, refuse_open_writes
from recsdk.cli.session import user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port, printed at start-up).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 512),
              help="Requests served at the same time.")
@click.option("--events", default=50_000, show_default=True,
              type=click.IntRange(1_000, 10_000_000),
              help="Synthetic events to generate when the shop is empty.")
@click.option("--seed", default=42, show_default=True, type=int,
              help="Seed of the synthetic shop and of the clothing prices.")
@click.option("--clothing", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="DEMO_SHOP_CLOTHING_CSV",
              help="The Women's E-Commerce Clothing Reviews CSV: a second catalogue.")
@click.option("--key-file", default="recsdk-data/demo_shop.key", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Where the session key is kept (made on the first start) when "
                   "DEMO_SHOP_SECRET_KEY is not set: logins, carts and visitor cookies "
                   "survive a restart.")
@click.option("--setup-only", is_flag=True, help="Load and train, then exit.")
@click.option("--insecure", is_flag=True,
              help="Serve a non-loopback --host although no API key guards recsdk's writes.")
def main(host: str, port: int, threads: int, events: int, seed: int, clothing: str | None,
         key_file: Path, setup_only: bool, insecure: bool) -> None:
    """Run the recsdk demo shop."""
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config: dict[str, Any] = {"DEMO_SHOP_CLOTHING_CSV": clothing} if clothing else {}
    if not os.environ.get("DEMO_SHOP_SECRET_KEY"):
        try:
            config["SECRET_KEY"] = kept_key(key_file)
        except KeyFileError as exc:
            raise click.UsageError(str(exc)) from exc
    with user_errors():
        app = create_app(config)
    try:
        sdk = recsdk_ext.sdk(app)
        with user_errors(sdk.settings.database_url):
            prepare(app, events=events, seed=seed, echo=click.echo)
        if setup_only:
            return
        refuse_open_writes(host, sdk.settings.api["api_key"], insecure)
        from waitress import create_server

        server = create_server(app, host=host, port=port, threads=threads)
        for address in listen_addresses(server):
            click.echo(f"demo shop on {address} (recsdk REST API: {address}/api/v1, "
                       f"OpenAPI: {address}/api/openapi.json)")
        sys.stdout.flush()
        with exit_on_sigterm():
            server.run()  # returns after SIGINT/SIGTERM, once requests in flight end
        server.close()
    finally:
        close_shop(app)


if __name__ == "__main__":
    main(prog_name="python -m demo_shop")
