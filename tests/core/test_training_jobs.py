"""The SDK's background training jobs: the newest listed first, for a dashboard."""

from __future__ import annotations

import threading

import pytest

from recsdk.lifecycle import TrainingJobs


def test_recent_jobs_newest_first_with_their_status() -> None:
    jobs = TrainingJobs()
    first = jobs.start(lambda: {"n": 1})
    jobs.wait(timeout_s=10)
    release = threading.Event()
    second = jobs.start(lambda: {"n": int(release.wait(10))})
    try:
        listed = jobs.recent()
        assert [j["id"] for j in listed] == [second, first]
        assert listed[1]["status"] == "succeeded" and listed[1]["result"] == {"n": 1}
        assert listed[0]["status"] in ("queued", "running")
        assert [j["id"] for j in jobs.recent(1)] == [second]
        listed[0]["status"] = "changed"  # a copy: the registry of jobs is not touched
        assert jobs.get(second)["status"] != "changed"
    finally:
        release.set()
        jobs.wait(timeout_s=10)
    assert jobs.recent(1)[0]["status"] == "succeeded"


def test_recent_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        TrainingJobs().recent(0)
