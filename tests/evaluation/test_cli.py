"""``recsdk evaluate``, ``recommend-batch``, ``split`` and ``tune`` end to end on files."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from recsdk.cli.evaluate import register
from recsdk.evaluation.evaluator import METRICS, evaluate
from recsdk.evaluation.files import (
    read_interactions,
    read_recommendations,
    read_truth,
    write_table,
)
from recsdk.evaluation.splits import random_split
from tests.evaluation.conftest import write

METRIC_NAMES = {"precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate", "auc",
                "coverage", "novelty", "diversity", "gini"}


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("recsdk")
    register(group)
    return group


@pytest.fixture
def files(tmp_path, interactions) -> dict[str, Path]:
    split = random_split(interactions, 0.25, seed=0)
    paths = {"train": tmp_path / "train.csv", "test": tmp_path / "test.tsv",
             "items": tmp_path / "items.csv"}
    write_table(split.train, paths["train"])
    write_table(split.test, paths["test"])
    items = pd.DataFrame({"item": sorted(interactions["item"].unique())})
    items["category"] = [f"c{int(i[1:]) % 3}" for i in items["item"]]
    write_table(items, paths["items"])
    return paths


def invoke(cli: click.Group, *args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_the_commands_are_registered_on_the_recsdk_group():
    from recsdk.cli import cli as recsdk_cli

    assert {"evaluate", "recommend-batch", "split", "tune"} <= set(recsdk_cli.commands)


def test_recommend_batch_then_evaluate_the_file(cli, files, tmp_path):
    recs = tmp_path / "recs.tsv"
    code, output = invoke(cli, "recommend-batch", "--train", files["train"], "--plugin",
                          "popularity", "--param", "count=events", "-k", 5, "--out", recs)
    assert code == 0, output
    assert recs.read_text().splitlines()[0] == "user\titem\trank\tscore"
    written = read_recommendations(recs)
    train = read_interactions(files["train"])
    assert written["user"].nunique() == train["user"].nunique()
    assert (written.groupby("user").size() == 5).all()
    trained = set(map(tuple, train[["user", "item"]].to_numpy()))
    assert not trained & set(map(tuple, written[["user", "item"]].to_numpy()))

    code, output = invoke(cli, "evaluate", "--recs", recs, "--truth", files["test"],
                          "--train", files["train"], "--items", files["items"], "-k", 5,
                          "--format", "json")
    assert code == 0, output
    scores = json.loads(output)
    assert set(scores) >= METRIC_NAMES
    expected = evaluate(written, read_truth(files["test"]), k=5, train=train,
                        items=pd.read_csv(files["items"], dtype=str))
    assert {m: scores[m] for m in METRICS} == pytest.approx(
        {m: expected[m] for m in METRICS}, nan_ok=True)
    assert scores["diversity"] is not None and scores["diversity_embedding"] is None


def test_recommend_batch_for_listed_users_only(cli, files, tmp_path):
    users = write(tmp_path / "users.csv", "user\nu3\nnewcomer\n")
    out = tmp_path / "recs.csv"
    code, output = invoke(cli, "recommend-batch", "--train", files["train"], "--plugin",
                          "popularity", "--users", users, "--out", out)
    assert code == 0, output
    recs = pd.read_csv(out, dtype=str)
    assert list(recs.columns) == ["user", "item", "rank", "score"]
    assert set(recs["user"]) == {"u3", "newcomer"}  # a new user gets popular items


def test_evaluate_table_output(cli, files, tmp_path):
    recs = tmp_path / "recs.csv"
    invoke(cli, "recommend-batch", "--train", files["train"], "--plugin", "popularity",
           "--out", recs)
    code, output = invoke(cli, "evaluate", "--recs", recs, "--truth", files["test"])
    assert code == 0, output
    header, row = output.splitlines()
    assert header.split()[:3] == ["run", "precision@10", "recall@10"]
    assert "novelty@10" not in header  # no --train: no popularity
    assert row.split()[0] == "recs"


def test_evaluate_plugins_gives_one_row_per_plugin_and_a_report(cli, files, tmp_path):
    code, output = invoke(cli, "evaluate", "--train", files["train"], "--test", files["test"],
                          "--plugin", "popularity", "--plugin", "recent=trending",
                          "--param", "recent.half_life_hours=2", "-k", 5, "--format", "json",
                          "--report-dir", tmp_path / "report", "--save-recs",
                          tmp_path / "lists")
    assert code == 0, output
    scores = json.loads(output.splitlines()[0])
    assert list(scores) == ["popularity", "recent"]
    assert METRIC_NAMES | {"fit_seconds", "score_seconds"} <= set(scores["recent"])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [r["label"] for r in report["results"]] == ["popularity", "recent"]
    assert (tmp_path / "report" / "report.html").is_file()
    saved = read_recommendations(tmp_path / "lists" / "recent.tsv")
    assert (saved.groupby("user").size() == 5).all()


def test_each_plugin_evaluates_the_configured_scoring_plugins_alone(cli, files, tmp_path):
    config = write(tmp_path / "recsdk.toml",
                   '[plugins.pop]\nplugin = "popularity"\ncount = "events"\n'
                   '[plugins.filters]\n')
    result = CliRunner().invoke(cli, ["evaluate", "--train", str(files["train"]), "--test",
                                      str(files["test"]), "--format", "json",
                                      "--each-plugin"],
                                obj={"config": str(config)})
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.output)) == ["pop"]


def test_sampled_negatives_only_when_asked(cli, files):
    args = ["evaluate", "--train", files["train"], "--test", files["test"], "--plugin",
            "popularity", "--format", "json"]
    _, full = invoke(cli, *args)
    _, sampled = invoke(cli, *args, "--negatives", 5)
    assert json.loads(sampled)["popularity"]["recall"] >= json.loads(full)["popularity"]["recall"]


def test_rating_predictions_mode(cli, tmp_path):
    truth = write(tmp_path / "truth.csv", "user,item,rating\nu,a,4\nu,b,2\n")
    predicted = write(tmp_path / "pred.csv", "user,item,rating\nu,a,5\nu,b,2\n")
    code, output = invoke(cli, "evaluate", "--predictions", predicted, "--truth", truth,
                          "--format", "json")
    assert code == 0, output
    assert json.loads(output) == {"rmse": pytest.approx(0.5 ** 0.5), "mae": 0.5, "pairs": 2.0}


@pytest.mark.parametrize(("recs_text", "message"), [
    ("user,item\nu0,i1\n", "missing column(s) ['rank']"),
    ("user,item,rank\nu0,i1,1\nu0,i2,1\n", "line 2, line 3: duplicate (user, rank)"),
    ("user,item,rank\nu0,i1,1\nu0,i2,two\n", "line 3: rank is not a number"),
    ("user,item,rank\nu0,i1,1\nstranger,i2,1\n", "line 3: 1 user(s) not in the truth file"),
])
def test_bad_recommendation_files_fail_with_the_line(cli, files, tmp_path, recs_text,
                                                     message):
    recs = write(tmp_path / "bad.csv", recs_text)
    code, output = invoke(cli, "evaluate", "--recs", recs, "--truth", files["test"])
    assert code == 1
    assert message in output and str(recs) in output
    assert "Traceback" not in output


def test_an_empty_test_set_is_an_error_not_a_zero(cli, files, tmp_path):
    empty = write(tmp_path / "empty.csv", "user,item\n")
    recs = write(tmp_path / "recs.csv", "user,item,rank\n")
    code, output = invoke(cli, "evaluate", "--recs", recs, "--truth", empty)
    assert code == 1 and "empty test set" in output
    code, output = invoke(cli, "evaluate", "--train", files["train"], "--test", empty,
                          "--plugin", "popularity")
    assert code == 1 and "no interactions" in output


@pytest.mark.parametrize(("args", "message"), [
    (["evaluate"], "give exactly one of --recs"),
    (["evaluate", "--recs", "r.csv", "--test", "t.csv"], "give exactly one of --recs"),
    (["evaluate", "--recs", "r.csv"], "--recs needs --truth"),
    (["evaluate", "--test", "t.csv", "--plugin", "popularity"], "--test needs --train"),
    (["evaluate", "--recs", "r.csv", "--truth", "t.csv", "--plugin", "x"],
     "belong to mode b"),
    (["evaluate", "--predictions", "p.csv"], "--predictions needs --truth"),
    (["evaluate", "--recs", "r.csv", "--truth", "t.csv", "--ks", "0,5"],
     "every k must be at least 1"),
])
def test_usage_mistakes_are_explained(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "r.csv", "user,item,rank\nu,a,1\n")
    write(tmp_path / "t.csv", "user,item\nu,a\n")
    code, output = invoke(cli, *args)
    assert code == 2 and message in output


def test_plugin_mistakes_are_explained(cli, files):
    base = ["evaluate", "--train", files["train"], "--test", files["test"]]
    code, output = invoke(cli, *base, "--plugin", "nope")
    assert code == 1 and "unknown plugin 'nope'" in output
    code, output = invoke(cli, *base, "--plugin", "popularity", "--param", "count=often")
    assert code == 1 and "invalid parameters" in output and "count" in output
    code, output = invoke(cli, *base, "--plugin", "popularity", "--plugin", "trending",
                          "--param", "count=events")
    assert code == 1 and "LABEL.count=VALUE" in output
    code, output = invoke(cli, *base, "--plugin", "filters")
    assert code == 1 and "does not score users" in output


def test_split_command_writes_reproducible_files(cli, files, tmp_path):
    args = ["split", "--input", files["train"], "--method", "kfold", "--folds", 3,
            "--seed", 4]
    assert invoke(cli, *args, "--out", tmp_path / "a")[0] == 0
    assert invoke(cli, *args, "--out", tmp_path / "b")[0] == 0
    for fold in ("fold-1", "fold-2", "fold-3"):
        assert ((tmp_path / "a" / fold / "test.tsv").read_text()
                == (tmp_path / "b" / fold / "test.tsv").read_text())
    code, output = invoke(cli, "split", "--input", files["train"], "--method", "temporal",
                          "--test-ratio", 1.5, "--out", tmp_path / "c")
    assert code == 1 and "test_ratio must be between 0 and 1" in output


def test_tune_reports_the_best_parameters(cli, files):
    code, output = invoke(cli, "tune", "--train", files["train"], "--plugin", "trending",
                          "--grid", "half_life_hours=1,100000", "--folds", 2, "-k", 5,
                          "--format", "json")
    assert code == 0, output
    result = json.loads(output)
    assert len(result["candidates"]) == 2
    best = max(result["candidates"], key=lambda c: c["mean"])
    assert result["best_params"] == best["params"]
    code, output = invoke(cli, "tune", "--train", files["train"], "--plugin", "trending",
                          "--grid", "half_life_hours=loguniform:1:1000", "--random", 2,
                          "--folds", 2)
    assert code == 0, output
    assert output.splitlines()[-1].startswith("best: {\"half_life_hours\": ")
