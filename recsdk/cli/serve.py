"""``recsdk serve``: the REST API on waitress, a production WSGI server.

The server runs until SIGINT or SIGTERM; then it finishes the requests in flight and
closes the SDK, which writes the served-list log still queued in memory.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from recsdk.cli.session import open_sdk, settings_of


def register(group: click.Group) -> None:
    group.add_command(serve)


def listen_addresses(server: Any) -> list[str]:
    """``http://host:port`` of every socket the waitress server listens on."""
    pairs = getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)]
    return [f"http://[{h}]:{p}" if ":" in str(h) else f"http://{h}:{p}" for h, p, *_ in pairs]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def refuse_open_writes(host: str, api_key: str | None, insecure: bool) -> None:
    """Stop unless writes are guarded, served on loopback only, or ``--insecure`` says so."""
    if api_key or insecure or is_loopback(host):
        return
    raise click.UsageError(
        f"refusing to serve on {host} with writes open to anyone who can reach it: no API "
        "key is configured. Set one (api.api_key in the config file, or RECSDK_API_KEY), "
        "serve on 127.0.0.1, or pass --insecure if the network in front is trusted.")


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Make SIGTERM (what process managers send) stop the server like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port, printed at startup).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 512),
              help="Worker threads, i.e. requests handled at the same time.")
@click.option("--insecure", is_flag=True,
              help="Serve a non-loopback --host although no API key guards the writes.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Server processes; above 1, gunicorn runs them on one socket, "
                   "each with --threads threads (not on Windows).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int, insecure: bool,
          workers: int) -> None:
    """Serve the REST API (docs/api.md) until interrupted."""
    refuse_open_writes(host, settings_of(ctx).api["api_key"], insecure)
    if workers > 1:
        from recsdk.cli.workers import serve_workers

        serve_workers(ctx, host=host, port=port, threads=threads, workers=workers)
    from waitress import create_server

    from recsdk.api import create_app

    with open_sdk(ctx, migrate=False) as sdk:
        server = create_server(create_app(sdk), host=host, port=port, threads=threads)
        for address in listen_addresses(server):
            click.echo(f"recsdk API serving on {address} (OpenAPI: {address}/api/openapi.json)")
        sys.stdout.flush()
        with exit_on_sigterm():
            server.run()  # returns after SIGINT/SIGTERM, once in-flight requests end
        server.close()
