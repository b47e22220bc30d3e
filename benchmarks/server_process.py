"""``recsdk`` commands and ``recsdk serve`` in processes of their own, as a shop runs them.

Shared by the benchmarks that drive the REST API over HTTP. The server's output goes
to a file, never to an unread pipe: a server that logs (waitress warns at every
queued request under load) would otherwise block once the pipe's buffer is full, and
the benchmark would measure that stall instead of the server.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without the host's ``RECSDK_*``, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env.update(variables)
    return env


def run_recsdk(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``recsdk ARGS`` to completion; raises with its output when it fails."""
    return subprocess.run([sys.executable, "-m", "recsdk.cli", *args], env=dict(env),
                          check=True, capture_output=True, text=True)


class ServerProcess:
    """``recsdk serve`` on a free loopback port, ready (``/healthz`` answered) on entry."""

    def __init__(self, env: Mapping[str, str], extra_args: Sequence[str] = (),
                 start_timeout_s: float = 30.0) -> None:
        """``start_timeout_s``: how long loading the model run may take (large runs)."""
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recsdk.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *extra_args],
            env=dict(env), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.1)
        self.log.seek(0)
        output = self.log.read()[-2000:]
        self.stop()
        raise RuntimeError(f"recsdk serve did not start:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
