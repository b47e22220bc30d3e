"""Offline evaluation of the served pipeline: ``recommend-batch``/``evaluate`` without --plugin."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from recsdk import RecSDK
from recsdk.cli.evaluate import register
from recsdk.evaluation.catalogue import read_catalogue
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.files import read_recommendations, write_table
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.served import (
    LIFTED_TIMEOUT_MS,
    ServedPipeline,
    evaluate_served,
    offline_settings,
)
from recsdk.evaluation.splits import random_split
from tests.evaluation.conftest import make_interactions, write

#: Generated timestamps moved to 2020, so that the reference SDK's event checks accept them.
EPOCH = 1_600_000_000
CONFIG = """
[plugins.popularity]
[plugins.trending]
weight = 0.5
half_life_hours = 100
[plugins.category_popularity]
weight = 0.3
[placements.home.weights]
trending = 0
"""
K = 5


def invoke(*args: object) -> tuple[int, str]:
    group = click.Group("recsdk")
    register(group)
    result = CliRunner().invoke(group, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def shop(tmp_path) -> dict[str, Path]:
    """Train/test files, a catalogue with categories and titles, and a configuration."""
    interactions = make_interactions(n_users=30, n_items=25, seed=3)
    interactions["timestamp"] += EPOCH
    split = random_split(interactions, 0.25, seed=0)
    paths = {"train": tmp_path / "train.csv", "test": tmp_path / "test.csv",
             "items": tmp_path / "items.csv", "config": tmp_path / "shop.toml"}
    write_table(split.train, paths["train"])
    write_table(split.test, paths["test"])
    items = pd.DataFrame({"item": [f"i{n}" for n in range(25)]})
    items["category"] = [f"c{n % 3}" for n in range(25)]
    items["title"] = [f"product {n}" for n in range(25)]
    items["price"] = [float(n) for n in range(25)]
    write_table(items, paths["items"])
    write(paths["config"], CONFIG)
    return paths


def reference_lists(shop: dict[str, Path], tmp_path: Path, placement: str) -> dict[str, list]:
    """What a shop's own RecSDK, fed through the public API, answers for every user."""
    train = pd.read_csv(shop["train"], dtype={"user": str, "item": str})
    items = pd.read_csv(shop["items"], dtype=str)
    config = {"database_url": f"sqlite:///{tmp_path / 'reference.db'}",
              **tomllib.loads(CONFIG)}
    out = {}
    with RecSDK(config, environ={}) as sdk:
        sdk.upsert_categories([{"id": c} for c in sorted(items["category"].unique())])
        sdk.upsert_items([{"id": r.item, "category_id": r.category, "title": r.title,
                           "price": float(r.price)} for r in items.itertuples()])
        sdk.track_many([{"user_id": r.user, "item_id": r.item, "type": "interaction",
                         "timestamp": float(r.timestamp), "value": float(r.rating)}
                        for r in train.itertuples()])
        sdk.fit(save=False)
        for user, seen in train.groupby("user")["item"]:
            result = sdk.recommend(user, k=K, placement=placement, log_request=False,
                                   exclude=list(seen))
            out[user] = [(i.item_id, i.position, i.score) for i in result.items]
    return out


@pytest.mark.parametrize("placement", ["default", "home"])
def test_batch_lists_equal_what_the_sdk_serves(shop, tmp_path, placement):
    out = tmp_path / "recs.tsv"
    code, output = invoke("recommend-batch", "--train", shop["train"], "--config",
                          shop["config"], "--items", shop["items"], "--placement", placement,
                          "-k", K, "--out", out)
    assert code == 0, output
    batch = read_recommendations(out)
    expected = reference_lists(shop, tmp_path, placement)
    assert set(batch["user"]) == set(expected)
    for user, rows in batch.groupby("user"):
        got = list(zip(rows["item"], rows["rank"], rows["score"], strict=True))
        assert [(i, r) for i, r, _ in got] == [(i, r) for i, r, _ in expected[user]]
        assert [s for *_, s in got] == pytest.approx([s for *_, s in expected[user]])


def test_placement_weights_change_the_lists(shop, tmp_path):
    lists = {}
    for placement in ("default", "home"):
        out = tmp_path / f"{placement}.csv"
        invoke("recommend-batch", "--train", shop["train"], "--config", shop["config"],
               "--items", shop["items"], "--placement", placement, "--out", out)
        lists[placement] = read_recommendations(out)
    assert not lists["default"].equals(lists["home"])


def test_training_items_never_come_back(shop, tmp_path):
    out = tmp_path / "recs.csv"
    code, output = invoke("recommend-batch", "--train", shop["train"], "--config",
                          shop["config"], "-k", 20, "--out", out)
    assert code == 0, output
    recs = read_recommendations(out)
    train = pd.read_csv(shop["train"], dtype=str)
    repeated = recs.merge(train[["user", "item"]], on=["user", "item"])
    assert repeated.empty
    assert len(recs) > 0


def test_candidates_restrict_the_ranking(shop, tmp_path):
    candidates = write(tmp_path / "candidates.csv", "item\ni1\ni4\ni7\ni24\n")
    out = tmp_path / "recs.csv"
    code, output = invoke("recommend-batch", "--train", shop["train"], "--config",
                          shop["config"], "--candidates", candidates, "-k", 10, "--out", out)
    assert code == 0, output
    recs = read_recommendations(out)
    assert set(recs["item"]) <= {"i1", "i4", "i7", "i24"}
    train = pd.read_csv(shop["train"], dtype=str)
    for user, rows in recs.groupby("user"):
        unseen = {"i1", "i4", "i7", "i24"} - set(train.loc[train["user"] == user, "item"])
        assert set(rows["item"]) == unseen  # every unseen candidate, nothing else


def test_served_popularity_scores_as_the_per_plugin_loop(shop):
    train = pd.read_csv(shop["train"], dtype={"user": str, "item": str})
    test = pd.read_csv(shop["test"], dtype={"user": str, "item": str})
    served = evaluate_served({"plugins": {"popularity": {}}}, train, test, k=K, environ={})
    alone = evaluate_plugin(PluginSpec("popularity", "popularity"), train, test, k=K)
    assert served.result.main == alone.main
    assert served.lists.degraded == 0


def test_evaluate_with_config_runs_the_served_pipeline(shop, tmp_path):
    code, output = invoke("evaluate", "--train", shop["train"], "--test", shop["test"],
                          "--config", shop["config"], "--items", shop["items"], "-k", K,
                          "--format", "json", "--save-recs", tmp_path / "lists")
    assert code == 0, output
    row = json.loads(output.splitlines()[-1])["shop"]
    assert row["degraded_lists"] == 0 and row["diversity"] is not None
    saved = read_recommendations(tmp_path / "lists" / "shop.tsv")
    assert (saved.groupby("user").size() <= K).all()


# ---- the catalogue reaches content-aware plugins ---------------------------------------


@pytest.fixture
def content_shop(tmp_path) -> dict[str, Path]:
    """Knitters and cooks; two cold items, one of each kind, that nobody interacted with."""
    rows = [(f"knitter{u}", f"wool{i}") for u in range(4) for i in range(u, u + 3)]
    rows += [(f"cook{u}", f"pan{i}") for u in range(4) for i in range(u, u + 3)]
    train = pd.DataFrame(rows, columns=["user", "item"])
    items = [(f"wool{i}", "knit", f"soft merino wool sweater {i}") for i in range(8)]
    items += [(f"pan{i}", "kitchen", f"cast iron frying pan {i}") for i in range(8)]
    items += [("wool-new", "knit", "soft merino wool cardigan"),
              ("pan-new", "kitchen", "cast iron skillet pan")]
    paths = {"train": tmp_path / "train.csv", "items": tmp_path / "items.csv",
             "config": tmp_path / "content.toml", "cold": tmp_path / "cold.csv"}
    write_table(train, paths["train"])
    write_table(pd.DataFrame(items, columns=["item", "category", "title"]), paths["items"])
    write(paths["config"], '[pipeline]\nfallback = ""\n[plugins.content]\n')
    write(paths["cold"], "item\nwool-new\npan-new\n")
    return paths


def test_the_catalogue_reaches_the_content_plugin(content_shop, tmp_path):
    out = tmp_path / "recs.csv"
    code, output = invoke("recommend-batch", "--train", content_shop["train"], "--config",
                          content_shop["config"], "--items", content_shop["items"],
                          "--candidates", content_shop["cold"], "-k", 1, "--out", out)
    assert code == 0, output
    first = dict(zip(*read_recommendations(out)[["user", "item"]].T.to_numpy(), strict=True))
    assert first == {**{f"knitter{u}": "wool-new" for u in range(4)},
                     **{f"cook{u}": "pan-new" for u in range(4)}}


def test_plugins_see_the_training_history_only_when_it_is_stored(content_shop):
    train = pd.read_csv(content_shop["train"], dtype=str)
    catalogue = read_catalogue(content_shop["items"])
    lengths = {}
    for history in (True, False):
        with ServedPipeline(content_shop["config"], train, catalogue=catalogue,
                            history=history, environ={}) as served:
            lists = served.recommend(["knitter0", "cook1"], 3)
        lengths[history] = len(lists.recommendations)
    assert lengths == {True: 6, False: 0}  # content scores from the user's history


def test_a_recbole_item_file_is_a_catalogue(tmp_path):
    path = write(tmp_path / "shop.item",
                 "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                 "1\tToy Story\t1995\tAnimation Comedy\n2\tHeat\t1995\tAction\n")
    catalogue = read_catalogue(path)
    items = catalogue.data.items.set_index("id")
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "category_id"] == "movies/animation"
    assert catalogue.item_categories["categories"].tolist() == [["animation", "comedy"],
                                                                 ["action"]]


def test_a_csv_catalogue_keeps_tags_prices_and_other_columns(tmp_path):
    path = write(tmp_path / "items.csv",
                 "item,category,title,tags,price,colour\na,shoes,Runner,sport|light,30,red\n"
                 "b,,Plain,,,\n")
    catalogue = read_catalogue(path)
    items = catalogue.data.items.set_index("id")
    assert items.loc["a", "tags"] == ["sport", "light"]
    assert items.loc["a", "price"] == 30.0
    assert items.loc["a", "attributes"] == {"colour": "red"}
    assert pd.isna(items.loc["b", "category_id"])
    assert catalogue.data.categories["id"].tolist() == ["shoes"]


# ---- settings of the throwaway SDK -----------------------------------------------------


def test_the_shop_database_and_caches_are_never_used(shop, tmp_path):
    environ = {"RECSDK_DATABASE_URL": "postgresql://shop/production",
               "RECSDK_REDIS_URL": "redis://shop:6379/0"}
    settings = offline_settings(shop["config"], tmp_path, environ=environ)
    assert settings["database_url"] == f"sqlite:///{tmp_path / 'evaluation.db'}"
    assert settings["redis_url"] is None
    assert settings["cache"]["result_ttl_s"] == 0 and settings["cache"]["degraded_ttl_s"] == 0
    assert settings["models"]["model_refresh_s"] == 0
    assert settings["models"]["artifact_dir"].startswith(str(tmp_path))


def test_plugin_time_budgets_are_lifted_unless_kept(tmp_path):
    config = {"pipeline": {"timeout_ms": 50},
              "plugins": {"popularity": {"timeout_ms": 10}}}
    lifted = offline_settings(config, tmp_path, environ={})
    assert lifted["pipeline"]["timeout_ms"] == LIFTED_TIMEOUT_MS
    assert "timeout_ms" not in lifted["plugins"]["popularity"]
    kept = offline_settings(config, tmp_path, timeouts=True, environ={})
    assert kept["pipeline"]["timeout_ms"] == 50
    assert kept["plugins"]["popularity"]["timeout_ms"] == 10


def test_the_temporary_database_goes_away(shop):
    train = pd.read_csv(shop["train"], dtype={"user": str, "item": str})
    with ServedPipeline(None, train, environ={}) as served:
        directory = Path(served.sdk.settings.database_url.removeprefix("sqlite:///")).parent
        assert directory.is_dir()
    assert not directory.exists()


# ---- bad input ----------------------------------------------------------------------------


def _one_line_error(code: int, output: str, *fragments: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    for fragment in fragments:
        assert fragment in lines[0]


def test_candidates_without_an_item_column(shop, tmp_path):
    bad = write(tmp_path / "bad.csv", "sku\ni1\n")
    code, output = invoke("recommend-batch", "--train", shop["train"], "--candidates", bad,
                          "--out", tmp_path / "r.csv")
    _one_line_error(code, output, "missing column 'item'", str(bad), "sku")


def test_an_empty_candidates_file(shop, tmp_path):
    empty = write(tmp_path / "empty.csv", "item\n")
    code, output = invoke("evaluate", "--train", shop["train"], "--test", shop["test"],
                          "--candidates", empty)
    _one_line_error(code, output, "no candidate items", str(empty))


def test_an_unknown_plugin_in_the_configuration(shop, tmp_path):
    config = write(tmp_path / "bad.toml", "[plugins.nope]\n")
    code, output = invoke("evaluate", "--train", shop["train"], "--test", shop["test"],
                          "--config", config)
    _one_line_error(code, output, "unknown plugin 'nope'")


def test_an_unknown_placement(shop, tmp_path):
    code, output = invoke("recommend-batch", "--train", shop["train"], "--config",
                          shop["config"], "--placement", "checkout", "--out",
                          tmp_path / "r.csv")
    _one_line_error(code, output, "Unknown placement 'checkout'", "home")


def test_candidates_that_no_test_pair_names(shop, tmp_path):
    candidates = write(tmp_path / "c.csv", "item\nnever-seen\n")
    code, output = invoke("evaluate", "--train", shop["train"], "--test", shop["test"],
                          "--candidates", candidates)
    _one_line_error(code, output, "no test pair names a candidate item")


def test_a_catalogue_row_that_cannot_be_read(shop, tmp_path):
    items = write(tmp_path / "items.csv", "item,category,price\ni1,c0,cheap\n")
    code, output = invoke("recommend-batch", "--train", shop["train"], "--items", items,
                          "--out", tmp_path / "r.csv")
    assert code == 1 and "price is not a finite number" in output and str(items) in output
    assert "Traceback" not in output


def test_an_empty_catalogue(shop, tmp_path):
    items = write(tmp_path / "items.csv", "item,category\n")
    code, output = invoke("recommend-batch", "--train", shop["train"], "--items", items,
                          "--out", tmp_path / "r.csv")
    _one_line_error(code, output, "no items", str(items))


@pytest.mark.parametrize(("args", "message"), [
    (["--plugin", "popularity", "--config", "shop.toml"], "give one of them"),
    (["--plugin", "popularity", "--placement", "home"], "--placement apply to the served"),
    (["--param", "count=events"], "--param apply to --plugin runs"),
    (["--negatives", "5"], "--negatives apply to --plugin runs"),
    (["--seed", "3"], "--seed apply to --plugin runs"),
])
def test_options_of_the_other_mode_are_refused(shop, args, message):
    code, output = invoke("evaluate", "--train", shop["train"], "--test", shop["test"], *args)
    assert code == 2 and message in output, output


# ---- event types and times ---------------------------------------------------------------


def test_event_types_weigh_as_configured(tmp_path):
    rows = "user,item,type\nu1,a,view\nu2,a,view\nu3,a,view\nu4,b,Purchase\nz,c,view\n"
    typed = write(tmp_path / "typed.csv", rows)
    untyped = write(tmp_path / "untyped.csv", "user,item\nu1,a\nu2,a\nu3,a\nu4,b\nz,c\n")
    config = write(tmp_path / "weights.toml", '[plugins.popularity]\ncount = "weight"\n'
                   "[event_weights]\nview = 1\npurchase = 8\n")
    firsts = {}
    for name, train in (("typed", typed), ("untyped", untyped)):
        out = tmp_path / f"{name}.csv"
        code, output = invoke("recommend-batch", "--train", train, "--config", config,
                              "--users", write(tmp_path / "z.csv", "user\nz\n"), "--out", out)
        assert code == 0, output
        firsts[name] = read_recommendations(out)["item"].iloc[0]
    assert firsts == {"typed": "b", "untyped": "a"}  # one purchase outweighs three views


def test_a_malformed_event_type_names_its_line(tmp_path):
    train = write(tmp_path / "train.csv", "user,item,type\nu1,a,view\nu2,b,buy now!\n")
    code, output = invoke("recommend-batch", "--train", train, "--out", tmp_path / "r.csv")
    _one_line_error(code, output, str(train), "line 3", "Event type must be")


def test_an_empty_timestamp_is_an_error_for_the_served_pipeline(tmp_path):
    train = write(tmp_path / "train.csv", "user,item,timestamp\nu1,a,1600000000\nu2,b,\n")
    code, output = invoke("recommend-batch", "--train", train, "--out", tmp_path / "r.csv")
    _one_line_error(code, output, str(train), "line 3", "empty timestamp")


def test_training_items_missing_from_the_catalogue_are_named(shop, tmp_path):
    partial = write(tmp_path / "partial.csv",
                    "item,category\n" + "".join(f"i{n},c{n % 3}\n" for n in range(20)))
    out = tmp_path / "recs.csv"
    code, output = invoke("recommend-batch", "--train", shop["train"], "--items", partial,
                          "-k", 10, "--out", out)
    assert code == 0, output
    assert "training item(s) are not in --items" in output
    assert set(read_recommendations(out)["item"]) <= {f"i{n}" for n in range(20)}
