"""``recsdk serve --workers N``: N server processes on one socket, under gunicorn.

Why gunicorn rather than N waitress processes sharing a port (``SO_REUSEPORT``): its
master forks the workers onto one listening socket, replaces a worker that dies or
hangs, and on SIGTERM lets every worker finish its requests before exiting, which is
supervision we would otherwise have to write and test ourselves; ``SO_REUSEPORT``
balances only on Linux, and nothing would restart a crashed process.

How: this process checks the settings, the database and the schema once (so mistakes
are one-line errors, as for ``recsdk serve``), binds the socket (so ``--port 0`` can
print the port chosen and a taken port fails here), then *replaces itself* with a
gunicorn master that inherits the socket. That master is a fresh interpreter which
never imports the SDK; every worker builds its own app after the fork
(:func:`recsdk.api.server.worker_app`), so no thread, connection or per-process state
of this process is shared by workers. SIGTERM to this process's pid reaches gunicorn.
As with any gunicorn, a ``gunicorn.conf.py`` in the working directory and
``$GUNICORN_CMD_ARGS`` apply too; the flags given here win over both.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from recsdk.cli.session import config_source, open_sdk

#: The app factory gunicorn calls in each worker.
WORKER_APP = "recsdk.api.server:worker_app()"
#: Seconds a worker may take to boot (load its model run) or stay silent before
#: gunicorn replaces it; also how long SIGTERM waits for requests in flight.
WORKER_TIMEOUT_S = 120
GRACEFUL_TIMEOUT_S = 30
#: Seconds an idle kept-alive connection stays open: waitress's default, and longer
#: than the usual load balancer's idle timeout (60 s), which must close first.
KEEP_ALIVE_S = 120


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that a child process can inherit."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.create_server(address[:2], family=family, backlog=2048)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.set_inheritable(True)
    return sock


def address_of(sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def gunicorn_argv(app: str, fd: int, workers: int, threads: int,
                  extra: Sequence[str] = ()) -> list[str]:
    """The command running ``app`` (gunicorn's ``module:factory()`` syntax) in
    ``workers`` processes of ``threads`` threads each, on the inherited socket ``fd``."""
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"fd://{fd}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--timeout", str(WORKER_TIMEOUT_S),
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_S),
        "--keep-alive", str(KEEP_ALIVE_S),
        "--name", "recsdk",
        # its default control socket path is one per user: a second server would clash
        "--no-control-socket",
        *extra,
        app,
    ]


def check_gunicorn() -> None:
    if sys.platform == "win32":
        raise click.ClickException(
            "--workers needs gunicorn, which does not run on Windows; run one "
            "`recsdk serve` per port behind a load balancer instead")
    if importlib.util.find_spec("gunicorn") is None:
        raise click.ClickException("--workers needs gunicorn: pip install gunicorn")


def serve_workers(ctx: click.Context, host: str, port: int, threads: int,
                  workers: int) -> NoReturn:
    """Check, bind, announce, then become the gunicorn master (never returns)."""
    check_gunicorn()
    # settings, database, schema and plugins checked once, in this process
    with open_sdk(ctx, serve_models=False, migrate=False) as sdk:
        shared_cache = sdk.settings.redis_url is not None
        shared_secret = bool(sdk.settings.api["beacon_secret"])
    if not shared_secret:  # one key for all workers, so any of them verifies a page's token
        os.environ["RECSDK_API_BEACON_SECRET"] = secrets.token_urlsafe(32)
    config = config_source(ctx)
    if config:  # workers read their settings from the environment, as gunicorn runs them
        os.environ["RECSDK_CONFIG"] = os.path.abspath(config)
    sock = listen_socket(host, port)
    address = address_of(sock)
    click.echo(f"recsdk API serving on {address} (OpenAPI: {address}/api/openapi.json) "
               f"with {workers} worker processes (gunicorn)")
    if not shared_secret:
        click.echo("warning: no api.beacon_secret (RECSDK_API_BEACON_SECRET): the workers "
                   "sign list tokens with a key drawn for this run, so pages served "
                   "before a restart report feedback that is refused; set one",
                   err=True)
    if not shared_cache:
        click.echo("warning: no redis_url: each worker caches served lists and recent "
                   "activity on its own, so an event sent to one worker reaches another "
                   "worker's lists only when its cache entry expires; configure Redis "
                   "to share them", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = gunicorn_argv(WORKER_APP, sock.fileno(), workers, threads)
    os.execv(argv[0], argv)
