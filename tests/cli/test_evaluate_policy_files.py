"""``recsdk evaluate-policy`` on log files: every target source, the output, bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsdk import RecSDK
from tests.cli.conftest import Invoke, Shop, assert_user_error

#: Three lists of two; the logging policy showed each item with the given propensity.
LOG = """request_id,user_id,item_id,position,propensity,reward,target_propensity
r1,u1,a,1,0.5,1,1
r1,u1,b,2,0.5,0,0
r2,u2,b,1,0.25,0,0
r2,u2,a,2,0.5,2,1
r3,u1,a,1,0.5,1,0.5
r3,u1,c,2,1,0,0
"""


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_json(invoke: Invoke, tmp_path: Path, *args: str, database_url: str | None = None
             ) -> dict:
    """The command's JSON; ``database_url``: the environment's (that of a --target-config
    too, as the environment overrides settings files)."""
    result = invoke("evaluate-policy", *args, "--json",
                    database_url=database_url or f"sqlite:///{tmp_path / 'unused.db'}")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_logging_policy_as_target_gives_the_logged_mean(invoke: Invoke, tmp_path: Path
                                                        ) -> None:
    log = write(tmp_path / "log.csv", LOG)
    out = run_json(invoke, tmp_path, "--log", log, "--target-logging")
    per_list = np.array([1.0, 2.0, 1.0])
    assert out["logged_value"]["value"] == pytest.approx(per_list.mean())
    for name in ("ips", "snips", "dr"):
        assert out["estimates"][name]["value"] == pytest.approx(per_list.mean())
    assert out["estimates"]["ips"]["std_error"] == pytest.approx(
        per_list.std(ddof=1) / np.sqrt(3))
    assert set(out) == {"target", "source", "reward", "requests", "impressions",
                        "logged_value", "estimates", "effective_sample_size",
                        "matched_share", "max_weight", "clipped", "clip", "confidence",
                        "interval", "warnings", "notes"}
    assert set(out["estimates"]["ips"]) == {"estimator", "value", "std_error", "ci_low",
                                            "ci_high", "requests"}
    assert (out["requests"], out["impressions"], out["reward"]) == (3, 6, None)


def test_target_column(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", LOG)
    out = run_json(invoke, tmp_path, "--log", log, "--target-column")
    # per list: r1 1*1/0.5 = 2; r2 2*1/0.5 = 4; r3 1*0.5/0.5 = 1
    assert out["estimates"]["ips"]["value"] == pytest.approx((2 + 4 + 1) / 3)
    # SNIPS per position: pos 1 weights 2,0,1 (rewards 1,0,1): 3/3; pos 2 weights 0,2,0: 4/2
    assert out["estimates"]["snips"]["value"] == pytest.approx(1 + 2)
    assert out["estimates"]["dr"] is None
    assert "whole distribution" in out["notes"][0]
    assert out["matched_share"] == pytest.approx(3 / 6)
    assert out["max_weight"] == pytest.approx(2)
    assert out["effective_sample_size"] == pytest.approx(25 / 9)


def test_clip(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", LOG)
    out = run_json(invoke, tmp_path, "--log", log, "--target-column", "--clip", "1.5")
    assert out["estimates"]["ips"]["value"] == pytest.approx((1.5 + 3 + 1) / 3)
    assert (out["clipped"], out["clip"], out["max_weight"]) == (2, 1.5, 1.5)


def test_target_file_and_table_output(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", LOG)
    # a deterministic target: b then a for r1, a then b for r2, c then a for r3
    target = write(tmp_path / "target.csv", "request_id,position,item_id,probability\n"
                   "r1,1,b,1\nr1,2,a,1\nr2,1,a,1\nr2,2,b,1\nr3,1,c,1\nr3,2,a,1\n")
    out = run_json(invoke, tmp_path, "--log", log, "--target-file", target)
    # nothing matches: IPS 0; the target never shows a logged (item, position)
    assert out["estimates"]["ips"]["value"] == 0
    assert out["matched_share"] == 0
    assert any("poor support" in w for w in out["warnings"])
    # DR falls back on the reward model: positive, where IPS is 0
    assert out["estimates"]["dr"]["value"] > 0
    result = invoke("evaluate-policy", "--log", log, "--target-file", target,
                    database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    assert result.exit_code == 0, result.output
    assert "warning: poor support" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"target   target file {target}"
    assert lines[1] == f"log      {log}: 3 lists, 6 impressions"
    assert lines[2] == "reward   the log's reward column (summed over each list)"
    ips_line = next(line for line in lines if line.strip().startswith("ips"))
    assert ips_line.split()[1:3] == ["0.0000", "0.0000"]


def test_target_file_matching_the_log(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", LOG)
    target = write(tmp_path / "target.jsonl", "\n".join(json.dumps(r) for r in [
        {"request_id": "r1", "position": 1, "item_id": "a", "probability": 0.5},
        {"request_id": "r1", "position": 1, "item_id": "c", "probability": 0.5},
        {"request_id": "r2", "position": 2, "item_id": "a", "probability": 1},
        {"request_id": "r3", "position": 1, "item_id": "a", "probability": 1},
    ]) + "\n")
    out = run_json(invoke, tmp_path, "--log", log, "--target-file", target)
    # r1: 1*0.5/0.5 = 1; r2: 2*1/0.5 = 4; r3: 1*1/0.5 = 2
    assert out["estimates"]["ips"]["value"] == pytest.approx(7 / 3)


def test_feedback_file_and_reward_mapping(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", "request_id,item_id,position,propensity\n"
                "r1,a,1,1\nr1,b,2,1\nr2,a,1,1\nr2,b,2,1\n")
    feedback = write(tmp_path / "feedback.csv", "request_id,item_id,type,value\n"
                     "r1,a,click,\nr1,a,purchase,30\nr2,b,click,\nr2,zz,click,\n"
                     "r9,a,click,\n")
    out = run_json(invoke, tmp_path, "--log", log, "--feedback", feedback, "--target-logging",
                   "--reward", "click=1", "--reward", "purchase=value")
    assert out["logged_value"]["value"] == pytest.approx((31 + 1) / 2)
    assert out["reward"] == {"click": 1.0, "purchase": "value"}
    assert "2 feedback row(s)" in out["notes"][0]
    default = run_json(invoke, tmp_path, "--log", log, "--feedback", feedback,
                       "--target-logging", "--reward", "click=0.5", "--reward", "purchase=0")
    assert default["logged_value"]["value"] == pytest.approx(0.5)
    result = invoke("evaluate-policy", "--log", log, "--feedback", feedback,
                    "--target-logging", database_url="sqlite://")
    assert_user_error(result, "feedback type(s) ['purchase'] have no reward", "--reward")
    no_value = write(tmp_path / "novalue.csv", "request_id,item_id,type\nr1,a,purchase\n")
    result = invoke("evaluate-policy", "--log", log, "--feedback", no_value,
                    "--target-logging", "--reward", "purchase=value", database_url="sqlite://")
    assert_user_error(result, "'purchase' feedback row(s) have no numeric value")


@pytest.mark.parametrize(("text", "fragments"), [
    ("request_id,item_id,position,reward\nr1,a,1,1\n",
     ["missing column 'propensity'", "probability that the logging policy showed"]),
    ("request_id,item_id,position,propensity\nr1,a,1,1\n", ["missing column 'reward'"]),
    ("request_id,item_id,propensity,reward\nr1,a,1,1\n", ["missing column(s) ['position']"]),
    ("request_id,item_id,position,propensity,reward\n", ["no logged impressions"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,0.5,1\nr1,b,2,0,0\n",
     ["propensity: line 3: propensity must be in (0, 1], got 0.0"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,1.5,1\n",
     ["propensity must be in (0, 1], got 1.5"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,,1\n",
     ["propensity: line 2: empty propensity"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,x,1\n",
     ["propensity is not a number"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,0,1,1\n",
     ["position must be a whole number from 1"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,1,1\nr1,b,1,1,1\n",
     ["line 3: two impressions of one request at the same position"]),
    ("request_id,item_id,position,propensity,reward\nr1,a,1,1,1\nr1,a,2,1,1\n",
     ["an item shown twice in one request"]),
    ("request_id,item_id,position,propensity,reward,target_propensity\nr1,a,1,1,1,2\n",
     ["target_propensity must be in [0, 1]"]),
])
def test_bad_log_files(invoke: Invoke, tmp_path: Path, text: str, fragments: list[str]
                       ) -> None:
    log = write(tmp_path / "log.csv", text)
    result = invoke("evaluate-policy", "--log", log, "--target-logging",
                    database_url="sqlite://")
    assert_user_error(result, "log.csv", *fragments)


@pytest.mark.parametrize(("text", "fragment"), [
    ("request_id,position,item_id\nr1,1,a\n", "missing column(s) ['probability']"),
    ("request_id,position,item_id,probability\nr1,1,a,1.5\n", "probability must be in [0, 1]"),
    ("request_id,position,item_id,probability\nr1,1,a,0.7\nr1,1,b,0.7\nr2,1,a,1\nr3,1,a,1\n",
     "probabilities adding up to more than 1, e.g. request 'r1' position 1"),
    ("request_id,position,item_id,probability\nr1,1,a,1\n",
     "2 logged request(s) are not in the target file, e.g. 'r2'"),
    ("request_id,position,item_id,probability\nr1,1,a,1\nr1,1,a,0\nr2,1,a,1\nr3,1,a,1\n",
     "the same item twice at one (request, position)"),
])
def test_bad_target_files(invoke: Invoke, tmp_path: Path, text: str, fragment: str) -> None:
    log = write(tmp_path / "log.csv", LOG)
    target = write(tmp_path / "target.csv", text)
    result = invoke("evaluate-policy", "--log", log, "--target-file", target,
                    database_url="sqlite://")
    assert_user_error(result, "target.csv", fragment)


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "give exactly one target"),
    (["--target-logging", "--target-column"], "got --target-logging, --target-column"),
    (["--target-logging", "--since", "2024-01-01"], "--since, --until and --drop-incomplete"),
    (["--target-logging", "--samples", "3"], "--samples applies to --target-config"),
    (["--target-logging", "--reward", "click=1"], "the log has its own reward column"),
    (["--target-logging", "--reward", "click"], "a reward is TYPE=NUMBER or TYPE=value"),
    (["--target-logging", "--reward", "click=lots"], "reward of 'click' must be a number"),
    (["--target-logging", "--clip", "0"], "--clip"),
    (["--target-logging", "--confidence", "1"], "--confidence"),
])
def test_bad_arguments(invoke: Invoke, tmp_path: Path, args: list[str], fragment: str
                       ) -> None:
    log = write(tmp_path / "log.csv", LOG)
    result = invoke("evaluate-policy", "--log", log, *args, database_url="sqlite://")
    assert result.exit_code in (1, 2), result.output
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_target_column_missing(invoke: Invoke, tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", "request_id,item_id,position,propensity,reward\n"
                "r1,a,1,1,1\n")
    result = invoke("evaluate-policy", "--log", log, "--target-column",
                    database_url="sqlite://")
    assert_user_error(result, "missing column 'target_propensity'")


def test_feedback_needs_a_log(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("evaluate-policy", "--feedback", write(tmp_path / "f.csv", "x\n"),
                    "--target-logging", database_url="sqlite://")
    assert result.exit_code == 2 and "--feedback goes with --log" in result.stderr


def test_missing_file(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("evaluate-policy", "--log", str(tmp_path / "nope.csv"), "--target-logging",
                    database_url="sqlite://")
    assert_user_error(result, "nope.csv: no such file")


def test_parquet(invoke: Invoke, tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "request_id": ["r1", "r1"], "item_id": ["a", "b"], "position": [1, 2],
        "propensity": [0.5, 1.0], "reward": [1.0, 0.0]})
    path = tmp_path / "log.parquet"
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec(
            "fastparquet") is None:
        path.write_bytes(b"PAR1")
        result = invoke("evaluate-policy", "--log", str(path), "--target-logging",
                        database_url="sqlite://")
        assert_user_error(result, "reading Parquet needs pyarrow")
        return
    frame.to_parquet(path)
    out = run_json(invoke, tmp_path, "--log", str(path), "--target-logging")
    assert out["logged_value"]["value"] == 1.0


def test_pipeline_target_reranks_each_logged_list(invoke: Invoke, trained_shop: Shop,
                                                  tmp_path: Path) -> None:
    """--target-config re-ranks each list's items for its user with the trained pipeline;
    the same lists written as a target file give the same estimates."""
    rng = np.random.default_rng(0)
    items = sorted(trained_shop.available())
    rows = []
    with RecSDK({"database_url": trained_shop.url}, environ={}) as sdk:
        target_rows = []
        for r in range(30):
            user = f"u{r % 25:02d}"
            shown = list(rng.choice(items, size=4, replace=False))
            for p, item in enumerate(shown, start=1):
                rows.append((f"q{r}", user, item, p, 0.25, float(rng.random() < 0.4)))
            result = sdk.recommend(user, candidates=shown, k=4, log_request=False)
            target_rows += [(f"q{r}", i.position, i.item_id, 1.0) for i in result.items]
    log = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["request_id", "user_id", "item_id", "position", "propensity",
                                "reward"]).to_csv(log, index=False)
    target = tmp_path / "target.csv"
    pd.DataFrame(target_rows, columns=["request_id", "position", "item_id", "probability"]
                 ).to_csv(target, index=False)
    config = write(tmp_path / "target.toml", f'database_url = "{trained_shop.url}"\n')
    by_config = run_json(invoke, tmp_path, "--log", str(log), "--target-config", config,
                         database_url=trained_shop.url)
    by_file = run_json(invoke, tmp_path, "--log", str(log), "--target-file", str(target))
    assert by_config["target"].startswith(f"pipeline of {config} (run ")
    for name in ("ips", "snips", "dr"):
        assert by_config["estimates"][name] == by_file["estimates"][name]
    assert 0 < by_config["matched_share"] < 1
    assert by_config["max_weight"] == pytest.approx(4)


def test_pipeline_target_needs_a_trained_model(invoke: Invoke, shop: Shop,
                                               tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", LOG)
    config = write(tmp_path / "target.toml", f'database_url = "{shop.url}"\n')
    result = invoke("evaluate-policy", "--log", log, "--target-config", config,
                    database_url=shop.url)
    assert_user_error(result, "no trained model", "recsdk train")
