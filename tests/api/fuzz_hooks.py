"""schemathesis hooks for its command line, as ``benchmarks/fuzz.py`` runs it.

The command line imports the module named in ``SCHEMATHESIS_HOOKS``; this one registers
the fuzzing checks (importing :mod:`tests.api.fuzzing` does) and steers requests to the
ids of the served shop, passed as JSON in ``RECSDK_FUZZ_KNOWN_IDS``.
"""

from __future__ import annotations

import os

import schemathesis

from tests.api.fuzzing import KNOWN_IDS_VARIABLE, KnownIds, steer_to_known_ids

steer_to_known_ids(schemathesis.hook, KnownIds.from_json(os.environ[KNOWN_IDS_VARIABLE]))
