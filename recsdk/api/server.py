"""The app of one worker process under a pre-forking server (gunicorn).

Each worker builds its own SDK *after* the fork: its own database engine, model
watcher (so every worker picks up a newer run by itself), request-log thread and
plugin pools. Threads started before a fork do not run in the child, so the app must
never be built in the parent (gunicorn's ``--preload``); a process that serves with an
SDK built before it was forked logs that as the error it is. Workers share what lives
outside the process: the database and, when configured, Redis. Run by ``recsdk serve
--workers N``, or::

    recsdk db upgrade    # workers never migrate; they refuse an old schema
    gunicorn --workers 4 --threads 8 --worker-class gthread \\
        'recsdk.api.server:worker_app()'

Settings come from ``$RECSDK_CONFIG`` and the ``RECSDK_*`` variables, as everywhere.
"""

from __future__ import annotations

import atexit
import logging
import os

from flask import Flask, Response

from recsdk.api.app import create_app
from recsdk.sdk import RecSDK

log = logging.getLogger(__name__)

#: Response header naming the worker process (its pid) that answered.
WORKER_HEADER = "X-Recsdk-Worker"


def worker_app() -> Flask:
    """The REST app for this worker process, on an SDK of its own, closed at exit.

    The SDK never migrates (several workers would race); ``recsdk db upgrade`` or
    ``recsdk serve`` does that once before workers start. Answers carry
    ``X-Recsdk-Worker: <pid>`` so that a balancer's spread can be seen.
    """
    sdk = RecSDK(migrate=False)
    app = create_app(sdk)
    built_in = os.getpid()
    warned: list[bool] = []

    @app.after_request
    def name_worker(response: Response) -> Response:
        pid = os.getpid()
        if pid != built_in and not warned:
            warned.append(True)
            log.error("recsdk: worker %d serves with an SDK built in process %d before the "
                      "fork (gunicorn --preload?): it has no model refresh and no served-"
                      "list writer. Run gunicorn without --preload.", pid, built_in)
        response.headers[WORKER_HEADER] = str(pid)
        return response

    atexit.register(sdk.close)  # flushes the served-list log when the worker stops
    return app
