"""The secret key ``python -m demo_shop`` keeps in a file when none is given."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from demo_shop.__main__ import main
from demo_shop.keys import KeyFileError, kept_key


def test_a_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "demo_shop.key"
    first = kept_key(path)
    assert len(first) >= 32 and path.read_text(encoding="utf-8").strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_key(path) == first  # the next start: the same key
    assert kept_key(tmp_path / "other.key") != first


@pytest.mark.parametrize(("content", "message"), [
    ("short\n", "holds 5 characters, fewer than 32: delete it"),
    (b"\xff" * 40, "cannot read the secret key file"),
])
def test_an_unusable_key_file_is_refused_naming_it(tmp_path: Path, content: str | bytes,
                                                   message: str) -> None:
    path = tmp_path / "demo_shop.key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(KeyFileError, match=message) as caught:
        kept_key(path)
    assert str(path) in str(caught.value)
    done = CliRunner().invoke(main, ["--setup-only", "--key-file", str(path)],
                              env={"DEMO_SHOP_SECRET_KEY": ""})
    assert done.exit_code == 2 and message.split(":")[0] in done.output
