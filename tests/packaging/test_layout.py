"""Which packages the wheel holds, read from setup.py without building one: recsdk's
own and the renamed folders, never the demo shop, which runs from the repository
(a top-level ``demo_shop`` would land in every shop's environment)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Prints the packages setup.py gives setuptools (its configuration stage only).
LIST_PACKAGES = """
import json
from distutils.core import run_setup
print(json.dumps(sorted(run_setup("setup.py", stop_after="config").packages)))
"""


def test_the_wheel_holds_recsdk_and_leaves_the_demo_shop_out() -> None:
    assert (REPO / "demo_shop" / "__init__.py").is_file()
    done = subprocess.run([sys.executable, "-c", LIST_PACKAGES], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    packages = json.loads(done.stdout.strip().splitlines()[-1])
    assert {p.split(".")[0] for p in packages} == {"recsdk", "recsdk_plugins"}
    assert "recsdk.migrations" in packages and "recsdk_plugins.popularity" in packages
    assert not any(p.startswith("demo_shop") for p in packages)


def test_every_entry_point_plugin_is_also_built_in() -> None:
    """A checkout that is not installed (or whose egg-info predates a plugin) finds its
    plugins through ``BUILTIN_PLUGINS``: it must name what setup.cfg registers."""
    from configparser import ConfigParser

    from recsdk.plugin_manager import BUILTIN_PLUGINS

    config = ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.entry_points"]["recsdk"].strip().splitlines()
    registered = dict(line.replace(" ", "").split("=", 1) for line in lines)
    assert registered == BUILTIN_PLUGINS
