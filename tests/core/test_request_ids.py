"""Request ids are unguessable: 128 random bits, nothing shared between consecutive ids."""

from __future__ import annotations

import itertools
import re

from recsdk.types import new_request_id


def test_request_ids_are_128_random_bits() -> None:
    ids = [new_request_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # every hex position takes many values: no per-process prefix, no counter suffix
    for position in range(32):
        assert len({i[position] for i in ids}) == 16
    # consecutive ids differ in about half of their 128 bits, as independent draws do
    flips = [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in itertools.pairwise(ids)]
    assert 60 < sum(flips) / len(flips) < 68
