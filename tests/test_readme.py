"""The README's Python code runs as written: every ```python block, in a fresh folder.

Each block runs on its own, in order, with no ``RECSDK_*`` variable of the host, in a
temporary working directory (the quick start writes ``shop.db`` there).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"),
                    flags=re.MULTILINE | re.DOTALL)


def run_block(code: str, index: int) -> tuple[dict[str, Any], str]:
    namespace: dict[str, Any] = {"__name__": f"readme_block_{index}"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    return namespace, printed.getvalue()


@pytest.fixture
def clean_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("RECSDK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2
    assert any("sdk.recommend" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, clean_folder: Path) -> None:
    namespace, printed = run_block(BLOCKS[index], index)
    if "sdk.recommend" in BLOCKS[index]:
        # what the text promises: the bought item is filtered, the other one is shown
        assert namespace["result"].item_ids == ["sku-2"]
        assert printed.splitlines()[0] == "['sku-2']"
        assert (clean_folder / "shop.db").exists()


def test_the_readme_settings_file_is_valid(tmp_path: Path) -> None:
    """The README's example TOML loads: every key in it is one recsdk accepts."""
    from recsdk.config import load_settings

    (block,) = [b for b in re.findall(r"^```toml\n(.*?)^```", README.read_text(
        encoding="utf-8"), flags=re.S | re.M) if "[pipeline]" in b]
    path = tmp_path / "recsdk.toml"
    path.write_text(block, encoding="utf-8")
    settings = load_settings(str(path), environ={})
    assert settings.models["model_refresh_s"] == 30
    assert settings.plugin("trending").quota == 200
    assert "product_page" in settings.known_placements
