"""The built wheel, installed as a shop would install it, runs the whole main job.

Built from a copy of what the build reads, installed without the torch and text extras
into a fresh virtualenv outside the repository, and driven through its ``recsdk``
command against SQLite in a temporary folder: nothing from the checkout is on the path,
so a missing file in the wheel, a top-level ``plugins`` package or a heavy import at
start-up fails here.

uv creates the virtualenv and installs into it: with its cache warm that takes seconds,
where pip took 24 s on an idle machine and over 100 s on a busy one (it copies every
file of numpy, scipy, pandas... again); the wheel it installs is the same.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from uv import find_uv_bin

REPO = Path(__file__).resolve().parents[2]

#: What ``python -m build`` reads: the build files and the folders that become packages,
#: and the demo shop, which must stay out of the wheel although it sits beside them.
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "README.md",
                "recsdk", "plugins", "migrations", "demo_shop")

#: Printed by a script run inside the installed virtualenv.
PROBE = """
import importlib.metadata, importlib.util, json
import recsdk, recsdk_plugins
from recsdk.storage.migrate import migrations_dir
from recsdk.api.capture import SCRIPT
print(json.dumps({
    "script": str(SCRIPT) if SCRIPT.is_file() else None,
    "recsdk": recsdk.__file__,
    "recsdk_plugins": recsdk_plugins.__file__,
    "migrations": str(migrations_dir()),
    "entry_points": sorted(ep.value for ep in importlib.metadata.entry_points(group="recsdk")),
    "installed": {name: importlib.util.find_spec(name) is not None
                  for name in ("plugins", "migrations", "demo_shop", "torch",
                               "sentence_transformers")},
}))
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Installed:
    """A virtualenv with the wheel installed, and a working folder outside the repo."""

    venv: Path
    work: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a program of the virtualenv (``recsdk``, ``python``) in the work folder."""
        result = subprocess.run([str(self.venv / "bin" / args[0]), *args[1:]],
                                cwd=self.work, env=self.env, capture_output=True,
                                text=True, timeout=300)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the build inputs (no stale ``build/`` folder)."""
    source = out / "source"
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out / "dist"), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheels = list((out / "dist").glob("recsdk-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def clean_environment(work: Path) -> dict[str, str]:
    """The host's environment without anything that points into the checkout or a venv.

    Bytecode is written again (uv does not compile at install): otherwise every command
    would compile pandas, scipy and sqlalchemy anew, 10 s each on a busy machine.
    """
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RECSDK_") and k not in dropped}
    env["RECSDK_DATABASE_URL"] = f"sqlite:///{work / 'shop.db'}"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    assert not root.is_relative_to(REPO), "the install must happen outside the repository"
    wheel = build_wheel(root)
    target = root / "venv"
    work = root / "work"
    work.mkdir()
    env = clean_environment(work)
    uv = find_uv_bin()
    for command in ([uv, "venv", "--quiet", "--python", sys.executable, str(target)],
                    [uv, "pip", "install", "--quiet", "--python", str(target / "bin" / "python"),
                     str(wheel)]):
        done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (command, done.stderr)
    return Installed(target, work, env)


def test_the_installed_names_are_ours(installed: Installed) -> None:
    probe = json.loads(installed.run("python", "-c", PROBE).stdout)
    site = installed.venv / "lib"
    for key in ("recsdk", "recsdk_plugins", "migrations"):
        assert Path(probe[key]).is_relative_to(site), (key, probe[key])
    assert Path(probe["migrations"]) == Path(probe["recsdk"]).parent / "migrations"
    assert probe["script"] == str(Path(probe["recsdk"]).parent / "static" / "recsdk.js")
    assert probe["entry_points"] and all(
        value.startswith("recsdk_plugins.") for value in probe["entry_points"])
    # no clashing top-level names, and the base install stays light (pillow is not
    # checked: matplotlib, a base requirement, depends on it)
    assert probe["installed"] == dict.fromkeys(
        ("plugins", "migrations", "demo_shop", "torch", "sentence_transformers"), False)
    failed = installed.run("python", "-c", "import plugins", check=False)
    assert failed.returncode != 0
    assert "No module named 'plugins'" in failed.stderr


def test_the_installed_cli_runs_the_main_job(installed: Installed) -> None:
    refused = installed.run("recsdk", "serve", "--port", "0", check=False)
    assert refused.returncode == 1
    assert "run `recsdk db upgrade`" in refused.stderr

    assert "migrated from an empty database" in installed.run("recsdk", "db", "upgrade").stdout
    assert "2,000 events" in installed.run("recsdk", "demo-data", "--events", "2000").stdout
    events = installed.work / "events.csv"
    events.write_text("user_id,item_id,type,timestamp\n"
                      "newcomer,i001,view,2025-01-02T10:00:00Z\n"
                      "newcomer,i002,purchase,2025-01-02T10:05:00Z\n")
    assert "2 events" in installed.run("recsdk", "import", str(events)).stdout
    assert re.search(r"trained run [0-9a-f]+", installed.run("recsdk", "train").stdout)

    answer = json.loads(installed.run("recsdk", "recommend", "newcomer", "--json").stdout)
    listed = [item["item_id"] for item in answer["items"]]
    assert listed and "i002" not in listed  # what the user bought is filtered

    served = serve_one_request(installed, "/api/v1/recommendations?user_id=newcomer")
    assert [item["item_id"] for item in served["items"]] == listed


#: plugins (with their settings) that need the torch extra, which the wheel's base
#: install lacks
DEEP_PLUGINS = {"cfgan": "weight = 1.0", "lightgcn": "weight = 1.0",
                "multimodal": "weight = 1.0", "multvae": "weight = 1.0",
                "sasrec": "weight = 1.0", "gru4rec": "weight = 1.0",
                "two_tower": "weight = 1.0",
                "qlearning": 'model = "dqn"'}


@pytest.mark.parametrize("plugin", DEEP_PLUGINS)
def test_a_deep_plugin_without_torch_stops_startup_naming_the_extra(
        installed: Installed, plugin: str) -> None:
    installed.run("recsdk", "db", "upgrade")
    config = installed.work / f"{plugin}.toml"
    config.write_text(f"[plugins.popularity]\n\n[plugins.{plugin}]\n{DEEP_PLUGINS[plugin]}\n")
    refused = installed.run("recsdk", "--config", str(config), "train", check=False)
    assert refused.returncode != 0
    assert f"plugins.{plugin}" in refused.stderr, refused.stderr
    assert "pip install 'recsdk[torch]'" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr


def serve_one_request(installed: Installed, path: str) -> dict[str, object]:
    """Start ``recsdk serve`` on a free port, GET ``path``, stop it with SIGTERM."""
    proc = subprocess.Popen([str(installed.venv / "bin" / "recsdk"), "serve", "--port", "0",
                             "--threads", "2"], cwd=installed.work, env=installed.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "recsdk serve printed nothing within 120 s"
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=60)
        conn.request("GET", path)
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        assert response.status == 200, body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        return body
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
