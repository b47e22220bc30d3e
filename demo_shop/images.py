"""Placeholder product images, drawn here as SVG: no files, no network.

Each product gets a tile in its department's colour with its title's initials, so
that a page of products reads at a glance and the same product always looks the same.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape


def hue_of(key: str) -> int:
    """A stable hue (0-359) for a department id (not Python's hash: it varies by run)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest()) % 360


def initials(title: str) -> str:
    """The first letters of the title's first two words (``Deluxe Lumota Cd`` → DL)."""
    words = [w for w in title.replace("·", " ").split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def placeholder_svg(title: str, department_id: str, department_name: str) -> str:
    hue = hue_of(department_id)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 300" width="300" '
        f'height="300" role="img" aria-label="{escape(title, {chr(34): "&quot;"})}">'
        f'<rect width="300" height="300" fill="hsl({hue},55%,88%)"/>'
        f'<circle cx="150" cy="135" r="78" fill="hsl({hue},45%,62%)"/>'
        f'<text x="150" y="160" font-family="Helvetica,Arial,sans-serif" font-size="68" '
        f'font-weight="700" fill="#fff" text-anchor="middle">{escape(initials(title))}</text>'
        f'<text x="150" y="265" font-family="Helvetica,Arial,sans-serif" font-size="18" '
        f'fill="hsl({hue},40%,30%)" text-anchor="middle">{escape(department_name)}</text>'
        "</svg>"
    )
