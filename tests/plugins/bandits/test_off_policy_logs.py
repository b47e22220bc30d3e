"""The bandits' logs are what off-policy evaluation reads: lists served by ``thompson``,
with its propensities in the impressions table and clicks as feedback, evaluated by
``recsdk evaluate-policy``: the logging policy as target gives back the logged mean."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsdk import RecSDK
from recsdk.cli import cli
from tests.cli.conftest import HOST_VARIABLES
from tests.core.shop import fill
from tests.plugins.bandits.test_plugin import K, config, open_sdk


def evaluate(url: str, *args: str) -> dict:
    env: dict[str, str | None] = dict.fromkeys(HOST_VARIABLES)
    env["RECSDK_DATABASE_URL"] = url
    result = CliRunner().invoke(cli, ["evaluate-policy", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_thompson_logs_evaluate_to_the_logged_mean(sdks, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    sdk: RecSDK = open_sdk(sdks, config(url, "thompson"))
    fill(sdk)
    sdk.fit()
    rng = np.random.default_rng(0)
    clicks = []
    for n in range(30):
        result = sdk.recommend(f"u{n % 6}", k=K)
        assert all(0 < i.propensity <= 1 for i in result.items)
        shown = [i.item_id for i in result.items]
        clicked = [i for i in shown if rng.random() < 0.2]
        if clicked:
            sdk.log_feedback([{"request_id": result.request_id, "item_id": i,
                               "type": "click"} for i in clicked])
        clicks.append(len(clicked))
    sdk.served.join()
    sdk.request_log.flush()

    out = evaluate(url, "--target-logging", "--reward", "click=1")
    assert (out["requests"], out["impressions"]) == (30, 30 * K)
    assert out["logged_value"]["value"] == pytest.approx(np.mean(clicks))
    assert out["estimates"]["ips"]["value"] == pytest.approx(np.mean(clicks))
    assert out["estimates"]["snips"]["value"] == pytest.approx(np.mean(clicks))
