"""The product page's rating and review form, read and checked before recsdk is told.

A rating is 1 to 5 stars (recsdk's ``rating`` event, the stars as its value); the
review text is optional and goes into the ``review`` event's context, so it must fit
recsdk's bounds for context texts (and the shop keeps it shorter still).
"""

from __future__ import annotations

STARS = range(1, 6)
#: Longest review text, in characters (recsdk takes up to 10,000 in a context text).
MAX_REVIEW = 2_000


class ReviewError(ValueError):
    """A rating or review the shop refuses; the message names what is wrong."""


def read_review(rating: str | None, text: str | None) -> tuple[int, str]:
    """The stars and the trimmed text of the form; ReviewError naming the problem."""
    value = (rating or "").strip()
    if not value.isascii() or not value.isdigit() or int(value) not in STARS:
        raise ReviewError(f"The rating must be a whole number of stars from {STARS[0]} to "
                          f"{STARS[-1]}; got {value[:20]!r}.")
    body = (text or "").strip()
    if len(body) > MAX_REVIEW:
        raise ReviewError(f"The review is {len(body):,} characters long; at most "
                          f"{MAX_REVIEW:,} fit.")
    if any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for ch in body):
        raise ReviewError("The review contains a character that is not text (NUL or an "
                          "unpaired surrogate).")
    return int(value), body
