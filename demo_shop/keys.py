"""The shop's secret key for ``python -m demo_shop`` when none is given: made once and
kept in a file, so that logins, carts and the visitor cookie (whose signing key the
shop derives from it) survive a restart, and visitors keep their A/B variant.

``DEMO_SHOP_SECRET_KEY`` wins when set (production, several processes).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: Shortest key read from the file (a key needs entropy to be one).
MIN_LENGTH = 32


class KeyFileError(ValueError):
    """The key file cannot be used; the message names it and says what to do."""


def kept_key(path: Path) -> str:
    """The key in ``path``, or a new random one written there (readable by its owner
    only) when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return _new_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the secret key file {path}: {exc}") from exc
    if len(text) < MIN_LENGTH:
        raise KeyFileError(f"the secret key file {path} holds {len(text)} characters, fewer "
                           f"than {MIN_LENGTH}: delete it to have a new key made, or set "
                           "DEMO_SHOP_SECRET_KEY")
    return text


def _new_key(path: Path) -> str:
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return kept_key(path)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key
