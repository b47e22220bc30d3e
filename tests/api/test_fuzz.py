"""schemathesis over the served OpenAPI document, on SQLite and on PostgreSQL.

Every operation of the document gets generated requests, valid ones and ones that
break it (schemathesis' positive and negative modes), each sent with the API key and
without one, to an app serving a trained shop. Any 5xx, an answer the document does
not declare (status, content type, headers, body), or a served list degraded by a
plugin error fails the test; the failures of all operations are listed together, each
with a curl command that reproduces it. Generation is seeded (derandomised), so a run
repeats. ``benchmarks/fuzz.py`` runs the same checks with many more requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode

from tests.api.fuzzing import Target, call_both_ways, fuzz_target

pytestmark = pytest.mark.slow

#: Generated requests per operation and generation mode (each sent twice: key, no key).
EXAMPLES = 40


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with fuzz_target(request.param) as made:
        yield made


def fuzz_operation(operation: APIOperation, mode: GenerationMode, jobs: list[str]
                   ) -> list[str]:
    """Run the generated requests of one operation and mode; the failures found.

    The ids of training jobs the requests started are added to ``jobs``.
    """
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        for response in call_both_ways(case):
            if response.status_code == 202:
                jobs.append(response.json()["id"])

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters
        assert mode is GenerationMode.NEGATIVE
    except Exception as exc:  # every operation is tried: all failures are listed
        failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def test_no_5xx_and_every_answer_as_documented(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    jobs: list[str] = []
    failures = [failure for operation in operations for mode in GenerationMode
                for failure in fuzz_operation(operation, mode, jobs)]
    assert not failures, "\n\n".join(failures)
    # whatever the fuzzer stored, training on it works and the lists it serves are whole
    assert jobs, "the fuzzer started no training job"
    target.sdk.jobs.wait(timeout_s=60)
    ended = [target.sdk.jobs.get(job) for job in jobs]
    assert all(job and job["status"] == "succeeded" for job in ended), ended
    target.sdk.fit()
    for user in target.known.users[:10]:
        result = target.sdk.recommend(user, k=10)
        assert not result.degraded and result.items, (user, result.failures)
