"""``recsdk serve --workers 2``: two gunicorn worker processes, each with its own SDK.

Both workers answer (``X-Recsdk-Worker`` names the process), request ids are unique
across them, each worker's served-list log is written when SIGTERM stops the server,
and with Redis an event sent to one worker changes the other worker's lists.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from recsdk import RecSDK
from recsdk.api.server import WORKER_HEADER
from recsdk.cli import cli
from recsdk.cli.workers import gunicorn_argv
from tests.api.helpers import generated_events, post_json

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs POSIX")


def trained_shop(tmp_path: Path, extra: str = "",
                 events: list[dict[str, Any]] | None = None) -> tuple[Path, str]:
    """A config on a SQLite file with generated events and a trained run; its run id."""
    config = tmp_path / "recsdk.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "shop.db"}"\n'
                      f'device = "cpu"\n{extra}')
    sdk = RecSDK(str(config), environ={})
    try:
        sdk.track_many(events or generated_events(40, 25, seed=3))
        return config, sdk.fit().run_id
    finally:
        sdk.close()


@contextmanager
def workers_server(config: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``recsdk serve --workers 2`` on a free port; killed if the test did not stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from recsdk.cli import main; main()",
               "--config", str(config), "serve", "--port", "0", "--threads", "2",
               "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready, "recsdk serve --workers printed nothing within 90 s"
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found and "2 worker processes" in line, line
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str, dict[str, Any]]:
    """Status, answering worker and parsed body of a GET on ``conn``."""
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.getheader(WORKER_HEADER, ""), json.loads(response.read())


def spread_gets(port: int, path: str, want_workers: int = 2,
                timeout_s: float = 90.0) -> list[tuple[int, str, dict[str, Any]]]:
    """GETs on fresh connections from 8 threads at once, round after round, until
    ``want_workers`` processes have answered (workers boot one after the other)."""
    answers: list[tuple[int, str, dict[str, Any]]] = []
    lock = threading.Lock()

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(4):
                got = get(conn, path)
                with lock:
                    answers.append(got)
        finally:
            conn.close()

    deadline = time.monotonic() + timeout_s
    while len({worker for _, worker, _ in answers}) < want_workers:
        assert time.monotonic() < deadline, {w for _, w, _ in answers}
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    return answers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_answer_with_unique_ids_and_stop_on_sigterm(tmp_path: Path) -> None:
    config, run_id = trained_shop(tmp_path)
    with workers_server(config) as (proc, port):
        answers = spread_gets(port, "/api/v1/recommendations?user_id=user-1&k=3")
        workers = {int(worker) for _, worker, _ in answers}
        assert len(workers) == 2 and proc.pid not in workers
        assert all(status == 200 for status, _, _ in answers)
        assert {body["model_run"] for _, _, body in answers} == {run_id}
        ids = [body["request_id"] for _, _, body in answers]
        assert len(set(ids)) == len(ids), "request ids repeat across workers"
        # no beacon_secret configured: the master drew one key for all workers, so a
        # list token of either verifies in both (refused for the visitor, not the key)
        tokens = {worker: body for _, worker, body in answers}
        events = [{"token": body["token"], "type": "impression", "position": 1,
                   "item_id": body["items"][0]["item_id"]} for body in tokens.values()]
        for conn in pinned_connections(port, "/healthz").values():
            conn.request("POST", "/api/v1/beacon", body=json.dumps(events),
                         headers={"Content-Type": "text/plain"})
            answer = json.loads(conn.getresponse().read())
            assert answer["reasons"] == {"wrong_visitor": 2}, answer
            conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    # each worker wrote its served-list log on the way out: feedback can credit them all
    sdk = RecSDK(str(config), environ={})
    try:
        assert set(sdk.store.request_info(ids)) == set(ids)
    finally:
        sdk.close()


def pinned_connections(port: int, path: str) -> dict[str, http.client.HTTPConnection]:
    """One kept-alive connection to each of the two workers, by worker pid."""
    spread_gets(port, path)  # both workers are up
    pinned: dict[str, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 60
    while len(pinned) < 2:
        assert time.monotonic() < deadline, "could not reach both workers"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        _, worker, _ = get(conn, path)
        if worker in pinned:
            conn.close()
        else:
            pinned[worker] = conn
    return pinned


@pytest.mark.redis
def test_with_redis_an_event_sent_to_one_worker_changes_the_other_workers_list(
        tmp_path: Path) -> None:
    user = f"workers-test-{uuid.uuid4().hex}"  # keys of its own: the Redis is shared
    events = [*generated_events(40, 25, seed=3),
              {"user_id": user, "item_id": "sku-1", "type": "view"}]
    config, _ = trained_shop(tmp_path, f'redis_url = "{REDIS_URL}"\n', events)
    path = f"/api/v1/recommendations?user_id={user}&k=5"
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        with workers_server(config) as (proc, port):
            (first, a), (second, b) = pinned_connections(port, path).items()
            assert first != second
            _, _, before = get(b, path)  # worker b has served (and cached) this list
            top = before["items"][0]["item_id"]
            status, _ = post_json(a, "/api/v1/events",
                                  {"user_id": user, "item_id": top, "type": "purchase"})
            assert status == 201
            _, worker, after = get(b, path)
            assert worker == second
            # the purchase, stored through worker a, is filtered by worker b at once
            assert top not in [i["item_id"] for i in after["items"]]
            a.close()
            b.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
    finally:
        keys = [k for k in raw.scan_iter(f"recsdk:*{user}*")]
        if keys:
            raw.delete(*keys)
        raw.close()


def shared_kib(pid: int, fragment: str) -> tuple[int, int]:
    """(Rss, Shared_Clean + Shared_Dirty) in KiB of ``pid``'s mappings of files whose
    path contains ``fragment`` (``/proc/PID/smaps``); shared pages are those mapped by
    more than one process."""
    rss = shared = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and not head[0].endswith(":"):
            inside = len(head) == 6 and fragment in head[5]
        elif inside and head[0] == "Rss:":
            rss += int(head[1])
        elif inside and head[0] in ("Shared_Clean:", "Shared_Dirty:"):
            shared += int(head[1])
    return rss, shared


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_workers_share_the_mapped_artifacts_and_follow_a_new_run(tmp_path: Path) -> None:
    """Both workers map the run's state files (one copy of the pages between them),
    and a run trained by another process reaches every worker without a restart."""
    config, run_id = trained_shop(
        tmp_path, "[models]\ninline_max_bytes = 0\nmodel_refresh_s = 0.2\n")
    state = f"{run_id}/plugin_popularity/state/popularity.npy"
    assert (tmp_path / "shop-artifacts" / state).is_file()
    with workers_server(config) as (proc, port):
        # each worker has served a list, so each has read the popularity pages
        pinned = pinned_connections(port, "/api/v1/recommendations?user_id=user-1&k=3")
        for worker in pinned:
            rss, shared = shared_kib(int(worker), state)
            assert rss > 0 and shared == rss, (worker, rss, shared)
        sdk = RecSDK(str(config), environ={})
        try:
            sdk.track_many(generated_events(10, 25, seed=4))
            new_run = sdk.fit().run_id  # another process: the workers were not told
        finally:
            sdk.close()
        assert new_run != run_id
        deadline = time.monotonic() + 60
        serving: dict[str, str] = {}
        while set(serving.values()) != {new_run}:
            assert time.monotonic() < deadline, serving
            time.sleep(0.1)
            for worker, conn in pinned.items():
                status, answered, body = get(conn, "/healthz")
                assert status == 200 and answered == worker
                serving[worker] = body["model_run"]
        for conn in pinned.values():
            conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_a_preloaded_app_says_its_workers_cannot_refresh(tmp_path: Path) -> None:
    """gunicorn --preload builds the SDK before the fork: the worker says so."""
    config, _ = trained_shop(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["RECSDK_CONFIG"] = str(config)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "1",
            "--bind", f"127.0.0.1:{port}", "--no-control-socket",
            "recsdk.api.server:worker_app()"]
    log = tmp_path / "gunicorn.log"
    with log.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, worker, _ = get(conn, "/api/v1/recommendations?user_id=user-1")
                conn.close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.2)
        assert status == 200 and int(worker) != proc.pid  # the worker's own pid
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"SDK built in process {proc.pid} before the fork" in log.read_text()


def test_workers_refuse_a_bad_database_before_starting(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "recsdk.toml"
    config.write_text('database_url = "mysql://shop@localhost/shop"\ndevice = "cpu"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--port", "0",
                                      "--workers", "2"])
    assert result.exit_code == 1
    assert "only sqlite:/// and postgresql:// are supported" in result.output


def test_workers_refuse_a_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    config, _ = trained_shop(tmp_path)
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--port",
                                          str(port), "--workers", "2"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_workers_refuse_a_bad_count() -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_gunicorn_command_builds_each_app_in_its_worker() -> None:
    argv = gunicorn_argv("recsdk.api.server:worker_app()", 5, 3, 8)
    assert argv[-1] == "recsdk.api.server:worker_app()"
    assert "--preload" not in argv

    def flag(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert (flag("--bind"), flag("--workers"), flag("--threads")) == ("fd://5", "3", "8")
    assert flag("--worker-class") == "gthread"
