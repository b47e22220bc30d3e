"""What the fuzzer found, each kept as a plain regression test on SQLite and PostgreSQL.

(Also found: a discount rate that overflows, ``tests/features/test_item_blocks.py``;
an event-batch deadlock answered 500, ``tests/api/test_faults.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from tests.api.fuzzing import AUTHENTICATED, Target, fuzz_target


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with fuzz_target(request.param) as made:
        yield made


@pytest.fixture
def client(target: Target) -> FlaskClient:
    return target.app.test_client()


@pytest.mark.parametrize("run_id", ["a%00bcdef", "%ED%A0%80abcdef", "x" * 300, "ABCDEF12",
                                    "abc-def-123"])
def test_activating_what_cannot_be_a_run_id_is_404(client: FlaskClient, target: Target,
                                                   run_id: str) -> None:
    # a NUL in the path made PostgreSQL fail the registry's query: 500
    answer = client.post(f"/api/v1/admin/models/{run_id}/activate", headers=AUTHENTICATED)
    assert answer.status_code == 404, answer.get_data(as_text=True)[:300]
    assert "no model run" in answer.get_json()["message"]
    assert target.sdk.model_run == target.known.runs[0]  # still serving the same run


def test_activating_a_run_by_its_prefix_still_works(client: FlaskClient,
                                                    target: Target) -> None:
    run = target.known.runs[0]
    answer = client.post(f"/api/v1/admin/models/{run[:8]}/activate", headers=AUTHENTICATED)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["id"] == run and answer.get_json()["active"]
