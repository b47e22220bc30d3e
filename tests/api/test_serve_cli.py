"""``recsdk serve`` in a real process: it serves, and SIGTERM shuts it down cleanly."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recsdk import RecSDK
from recsdk.cli import cli
from recsdk.storage import models
from tests.api.helpers import count_rows, post_json

REPO = Path(__file__).resolve().parents[2]


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    config = tmp_path / "recsdk.toml"
    config.write_text(f'database_url = "sqlite:///{db}"\ndevice = "cpu"\n')
    # `recsdk serve` never migrates: a deploy runs `recsdk db upgrade` first
    RecSDK({"database_url": f"sqlite:///{db}", "device": "cpu"}, environ={}).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from recsdk.cli import main; main()",
               "--config", str(config), "serve", "--port", "0", "--threads", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready, "recsdk serve printed nothing within 90 s"
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=30)
        status, answer = post_json(conn, "/api/v1/events",
                                   {"user_id": "u1", "item_id": "i1", "type": "view"})
        assert (status, answer["stored"]) == (201, 1)
        conn.request("GET", "/api/v1/recommendations?user_id=u1")
        served = json.loads(conn.getresponse().read())
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    sdk = RecSDK({"database_url": f"sqlite:///{db}", "device": "cpu"}, environ={})
    try:
        assert sdk.store.count_events() == 1
        # the served list was logged, so feedback on it can be credited
        assert count_rows(sdk, models.RecommendationRequest) == 1
        assert sdk.store.request_info([served["request_id"]])
    finally:
        sdk.close()


def test_serve_with_an_unusable_database_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "recsdk.toml"
    config.write_text('database_url = "mysql://shop@localhost/shop"\ndevice = "cpu"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--port", "0"])
    assert result.exit_code == 1
    assert "only sqlite:/// and postgresql:// are supported" in result.output


def test_serve_refuses_a_bad_port() -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "--port" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "shop.example.com"])
def test_serve_refuses_open_writes_on_a_reachable_address(
        host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "recsdk.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "x.db"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--host", host])
    assert result.exit_code == 2
    assert f"refusing to serve on {host}" in result.output
    assert "--insecure" in result.output and "RECSDK_API_KEY" in result.output
    assert not (tmp_path / "x.db").exists()  # refused before opening anything


@pytest.mark.parametrize(("args", "environ"), [
    (["--host", "0.0.0.0", "--insecure"], {}),
    (["--host", "0.0.0.0"], {"RECSDK_API_KEY": "k"}),
    (["--host", "127.0.0.2"], {}),
    (["--host", "::1"], {}),
    (["--host", "localhost"], {}),
])
def test_serve_passes_the_check_with_a_key_loopback_or_insecure(
        args: list[str], environ: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "recsdk.toml"  # an unusable database: fails after the check
    config.write_text('database_url = "mysql://shop@localhost/shop"\ndevice = "cpu"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--port", "0", *args])
    assert "refusing to serve" not in result.output
    assert "only sqlite:/// and postgresql:// are supported" in result.output
