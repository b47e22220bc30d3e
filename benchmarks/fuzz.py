"""Fuzzing the served API: requests made and 5xx answers found, per database (aim: 0).

For each database (SQLite, PostgreSQL) a fresh trained shop (``tests/api/fuzzing.py``)
is served by waitress on a free port, and the schemathesis command line runs against
its OpenAPI document twice: with the API key (``-H X-API-Key``) and without it. Every
phase runs (the schema's examples, boundary "coverage" cases, random fuzzing in
positive and negative mode), with the checks the suite uses: no 5xx, and status,
content type, headers and body as documented. The server counts what it answered by
status itself, so the figures do not depend on the fuzzer's own report.

Prints, per database and key: requests answered, answers by status class, 5xx, the
fuzzer's distinct failures, and seconds; then each failure the fuzzer reported.

Run (PostgreSQL at RECSDK_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1/test):
    PYTHONPATH=. python benchmarks/fuzz.py [--examples 150] [--seed 8]
        [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from tests.api.fuzzing import (
    API_KEY,
    CHECKS,
    DATABASES,
    KNOWN_IDS_VARIABLE,
    KnownIds,
    fuzz_target,
)
from tests.api.helpers import live_server

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


class StatusCounter:
    """WSGI middleware that counts the answers of a Flask app by endpoint and status."""

    def __init__(self, app: Flask) -> None:
        self.wsgi_app = app.wsgi_app
        self.routes = app.url_map.bind("localhost")
        self.counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def endpoint(self, environ: dict[str, Any]) -> str:
        try:
            rule, _ = self.routes.match(environ.get("PATH_INFO", ""),
                                        environ.get("REQUEST_METHOD", "GET"))
        except HTTPException:
            return "(no route)"
        return str(rule)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        endpoint = self.endpoint(environ)

        def counting(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            with self._lock:
                self.counts[endpoint, int(status.split(" ", 1)[0])] += 1
            return start_response(status, headers, *exc)
        return self.wsgi_app(environ, counting)

    def reset(self) -> Counter[tuple[str, int]]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


@dataclass
class Pass:
    """One schemathesis run against one database, with or without the key."""

    database: str
    keyed: bool
    answers: Counter[tuple[str, int]]  # (endpoint, status): count
    seconds: float
    exit_code: int
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.answers.values())

    def share(self, low: int, endpoint: str | None = None) -> int:
        """Answers with a status from ``low`` to ``low + 99`` (of ``endpoint``, or all)."""
        return sum(n for (where, code), n in self.answers.items()
                   if low <= code < low + 100 and endpoint in (None, where))


def run_schemathesis(address: str, keyed: bool, known: KnownIds, examples: int, seed: int,
                     report: Path) -> tuple[int, str]:
    """The schemathesis command line against the served document; (exit code, output)."""
    command = [
        SCHEMATHESIS, "run", f"http://{address}/api/openapi.json",
        "--checks", ",".join(check.__name__ for check in CHECKS),
        "--max-examples", str(examples), "--seed", str(seed),
        "--phases", "examples,coverage,fuzzing", "--continue-on-failure",
        "--generation-database", "none", "--suppress-health-check", "all",
        "--workers", "1", "--no-color", "--output-truncate", "true",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    if keyed:
        command += ["-H", f"X-API-Key: {API_KEY}"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environ = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.fuzz_hooks",
               KNOWN_IDS_VARIABLE: known.to_json(), "PYTHONPATH": path}
    # its cache of crashes goes to the working folder: the report's, not the checkout
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environ,
                          cwd=report.parent)
    return done.returncode, done.stdout + done.stderr


def failure_lines(output: str) -> list[str]:
    """The failure headings and reproducing curl commands schemathesis printed."""
    keep = re.compile(r"^\s*(_{3,} .* _{3,}|- .+|curl .+)$")
    return [line.strip() for line in output.splitlines() if keep.match(line)]


def fuzz_database(database: str, examples: int, seed: int) -> list[Pass]:
    passes = []
    with fuzz_target(database) as target, tempfile.TemporaryDirectory() as folder:
        counter = StatusCounter(target.app)
        target.app.wsgi_app = counter  # type: ignore[method-assign]
        with live_server(target.app, threads=4) as address:
            for keyed in (True, False):
                counter.reset()
                started = time.perf_counter()
                code, output = run_schemathesis(address, keyed, target.known, examples, seed,
                                                Path(folder) / "junit.xml")
                seconds = time.perf_counter() - started
                passes.append(Pass(database, keyed, counter.reset(), seconds, code,
                                   failure_lines(output) if code else []))
                if code not in (0, 1):  # 1: failures found; anything else: it did not run
                    print(output[-3000:], file=sys.stderr)
    return passes


def print_table(passes: Iterable[Pass]) -> None:
    print("| database | API key | requests | 2xx | 4xx | 5xx | fuzzer exit | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for p in passes:
        print(f"| {p.database} | {'yes' if p.keyed else 'no'} | {p.requests:,} | "
              f"{p.share(200):,} | {p.share(400):,} | {p.share(500):,} | {p.exit_code} | "
              f"{p.seconds:.0f} |")


def print_endpoints(passes: list[Pass]) -> None:
    """Answers by endpoint and status class, all passes together."""
    total = sum((p.answers for p in passes), Counter())
    print("| endpoint | 2xx | 4xx | 5xx |")
    print("|---|---|---|---|")
    for endpoint in sorted({where for where, _ in total}):
        row = [sum(n for (where, code), n in total.items()
                   if where == endpoint and low <= code < low + 100) for low in (200, 400, 500)]
        print(f"| {endpoint} | " + " | ".join(f"{n:,}" for n in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150,
                        help="random requests per operation and generation mode")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--databases", default=",".join(DATABASES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # server tracebacks of any 5xx show here
    passes = []
    for database in args.databases.split(","):
        passes += fuzz_database(database, args.examples, args.seed)
    print_table(passes)
    print()
    print_endpoints(passes)
    print()
    by_database: Counter[str] = Counter()
    for p in passes:
        by_database[p.database] += p.requests
    for database, requests in by_database.items():
        found = sum(p.share(500) for p in passes if p.database == database)
        print(f"{database}: {requests:,} requests fuzzed, {found} answered 5xx")
    for p in passes:
        if p.failures:
            print(f"\nfailures on {p.database}, {'with' if p.keyed else 'without'} key:")
            print("\n".join(p.failures))


if __name__ == "__main__":
    main()
