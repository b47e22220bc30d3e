"""``recsdk evaluate``, ``recommend-batch``, ``split`` and ``tune``: offline evaluation.

The commands only parse arguments, read files and print; the work is done by
:mod:`recsdk.evaluation`, which the benchmarks and tests call directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from recsdk.errors import RecSDKError, ValidationFailed
from recsdk.jsonable import json_safe

F = TypeVar("F", bound=Callable[..., Any])


def _describe(exc: Exception) -> str:
    """A one-line-per-problem message; ValidationFailed's dict made readable."""
    if isinstance(exc, ValidationFailed) and isinstance(exc.messages, dict):
        source = str(exc).removeprefix("invalid ").split(": ", 1)[0]
        problems = [f"{source}: {field}: {message}"
                    for field, messages in exc.messages.items()
                    for message in (messages if isinstance(messages, list) else [messages])]
        return "\n".join(problems)
    return str(exc)


def _run(action: Callable[[], None]) -> None:
    """Run ``action``, turning expected failures into a clean message and exit code 1."""
    try:
        action()
    except (RecSDKError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(_describe(exc)) from exc


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise click.BadParameter(f"expected whole numbers separated by commas, got {text!r}",
                                 param_hint="--ks") from exc
    if not ks or ks[0] < 1:
        raise click.BadParameter("every k must be at least 1", param_hint="--ks")
    return ks


def _plugin_options(function: F) -> F:
    function = click.option(
        "--param", "params", multiple=True, metavar="[LABEL.]KEY=VALUE",
        help="A plugin parameter (JSON value or text); prefix LABEL. when several plugins.",
    )(function)
    return click.option(
        "--plugin", "plugins", multiple=True, metavar="[LABEL=]NAME",
        help="Plugin entry point to fit; repeat to compare (LABEL names a run).",
    )(function)


def _catalog_options(served: bool) -> Callable[[F], F]:
    """--items and --category-column; ``served``: the file may also be a catalogue."""
    help_text = "Items file (item,category): categories for diversity" + (
        "; for the served pipeline also its catalogue (a RecBole .item, or CSV/TSV with "
        "title, category, tags, description, price...)." if served else ".")

    def decorate(function: F) -> F:
        function = click.option("--category-column", default="category", show_default=True,
                                help="Column of --items holding categories.")(function)
        return click.option("--items", "items_path", type=click.Path(dir_okay=False),
                            help=help_text)(function)

    return decorate


def _read_items(items_path: str | None, category_column: str) -> Any:
    from recsdk.evaluation.files import read_items

    return read_items(items_path, category_column) if items_path else None


def _served_options(function: F) -> F:
    """Options of the served-pipeline mode (no --plugin): what recommend() is asked."""
    function = click.option(
        "--with-timeouts", is_flag=True,
        help="Keep the configured plugin time budgets (default: lifted, so that machine "
             "load cannot change the lists).")(function)
    function = click.option(
        "--candidates", "candidates_path", type=click.Path(dir_okay=False),
        help="File with an item column: rank only these items (cold-start protocols).")(
        function)
    function = click.option("--placement", default="default", show_default=True,
                            help="Placement to recommend for: its weight overrides apply.")(
        function)
    return click.option(
        "--config", "served_config", type=click.Path(dir_okay=False),
        help="Settings (TOML) of the pipeline to evaluate as served (default: the "
             "recsdk --config file, RECSDK_CONFIG, or the built-in defaults).")(function)


def _given(ctx: click.Context, *names: str) -> list[str]:
    """The options among ``names`` that the command line set (not left at default)."""
    params = {p.name: p for p in ctx.command.params}
    return [params[n].opts[0] for n in names
            if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]


def _refuse(ctx: click.Context, names: Sequence[str], why: str) -> None:
    given = _given(ctx, *names)
    if given:
        raise click.UsageError(f"{', '.join(given)} {why}")


def _config(ctx: click.Context, served_config: str | None) -> str | None:
    """The settings file: the command's --config, else the group's (or RECSDK_CONFIG)."""
    return served_config or (ctx.obj or {}).get("config")


def _warn_served(lists: Any, uncatalogued: Sequence[str]) -> None:
    """Degraded lists, and training items the --items catalogue lacks, on stderr."""
    summary = lists.degraded_summary()
    if summary:
        click.echo(f"warning: {summary}", err=True)
    if uncatalogued:
        click.echo(f"warning: {len(uncatalogued)} training item(s) are not in --items "
                   f"(e.g. {uncatalogued[0]!r}); the served pipeline ranks catalogue items "
                   "only, so they are never recommended", err=True)


def register(group: click.Group) -> None:
    group.add_command(evaluate)
    group.add_command(recommend_batch)
    group.add_command(split)
    group.add_command(tune)


# --------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------


@click.command()
@click.option("--recs", "recs_path", type=click.Path(dir_okay=False),
              help="Mode a: recommendations to score (user,item,rank[,score]).")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False),
              help="Mode a: held-out interactions (user,item); each pair is relevant.")
@click.option("--predictions", "predictions_path", type=click.Path(dir_okay=False),
              help="Rating mode: predicted ratings (user,item,rating) scored against --truth.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False),
              help="Training interactions: popularity for novelty, items for coverage/AUC "
                   "(mode a); what plugins are fitted on (mode b).")
@click.option("--test", "test_path", type=click.Path(dir_okay=False),
              help="Mode b: held-out interactions to recommend for and score against.")
@_plugin_options
@_catalog_options(served=True)
@click.option("--embeddings", "embeddings_path", type=click.Path(dir_okay=False),
              help=".npz with item_ids and vectors: embedding diversity.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--negatives", type=click.IntRange(min=1), default=None,
              help="Mode b: rank test items among N sampled items instead of all items.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="--plugin runs: the plugins' seed (the served pipeline uses the "
                   "configuration's).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
@click.option("--report-dir", type=click.Path(file_okay=False),
              help="Also write report.html and report.json here.")
@click.option("--ks", "ks_text", default="1,5,10,20", show_default=True,
              help="k values for the report's metrics-against-k plot.")
@click.option("--save-recs", type=click.Path(file_okay=False),
              help="Mode b: also write each run's top-k lists to DIR/LABEL.tsv.")
@_served_options
@click.option("--each-plugin", is_flag=True,
              help="Mode b: fit each configured scoring plugin alone, one row each, "
                   "instead of the served pipeline.")
@click.pass_context
def evaluate(ctx: click.Context, recs_path: str | None, truth_path: str | None,
             predictions_path: str | None, train_path: str | None, test_path: str | None,
             plugins: Sequence[str], params: Sequence[str], items_path: str | None,
             category_column: str, embeddings_path: str | None, k: int,
             negatives: int | None, seed: int, output_format: str, report_dir: str | None,
             ks_text: str, save_recs: str | None, served_config: str | None, placement: str,
             candidates_path: str | None, with_timeouts: bool, each_plugin: bool) -> None:
    """Score recommendations against held-out interactions.

    \b
    Mode a, a recommendation file made anywhere:
      recsdk evaluate --recs RECS --truth TRUTH [--train TRAIN] [--items ITEMS]
    Mode b, train on TRAIN and score the top k of every TEST user:
      recsdk evaluate --train TRAIN --test TEST [--config FILE] [--placement P]
        [--items CATALOGUE] [--candidates ITEMS]
      (the configured pipeline, through the same recommend() as serving)
      recsdk evaluate --train TRAIN --test TEST --plugin NAME [--param KEY=VALUE]
      (each plugin fitted alone; --each-plugin: each configured scoring plugin)
    Rating predictions:
      recsdk evaluate --predictions PRED --truth TRUTH
    """
    modes = [name for name, given in (("--recs", recs_path), ("--test", test_path),
                                      ("--predictions", predictions_path)) if given]
    if len(modes) != 1:
        raise click.UsageError("give exactly one of --recs (score a file), --test (fit and "
                               f"score plugins) or --predictions (ratings); got {modes or 'none'}")
    ks = _ks(ks_text)
    served_only = ("served_config", "placement", "candidates_path", "with_timeouts")

    def run() -> None:
        if predictions_path:
            _evaluate_ratings(predictions_path, truth_path, output_format)
        elif recs_path:
            _refuse(ctx, ("plugins", "params", "negatives", "each_plugin", *served_only),
                    "belong to mode b (--train with --test)")
            _evaluate_file(recs_path, truth_path, train_path, items_path, category_column,
                           embeddings_path, k, ks, output_format, report_dir)
        elif plugins or each_plugin:
            if plugins and each_plugin:
                raise click.UsageError("give --plugin or --each-plugin, not both")
            if plugins and served_config:
                raise click.UsageError("--plugin fits plugins alone and --config evaluates "
                                       "the configured pipeline: give one of them")
            _refuse(ctx, served_only[1:], "apply to the served pipeline (without --plugin)")
            _evaluate_plugins(_config(ctx, served_config), train_path, test_path, plugins,
                              params, items_path, category_column, embeddings_path, k, ks,
                              negatives, seed, output_format, report_dir, save_recs)
        else:
            _refuse(ctx, ("params", "negatives", "seed"), "apply to --plugin runs; the served "
                    "pipeline takes its parameters and seed from the configuration")
            _evaluate_served(_config(ctx, served_config), train_path, test_path, items_path,
                             category_column, embeddings_path, candidates_path, placement,
                             with_timeouts, k, ks, output_format, report_dir, save_recs)

    _run(run)


def _evaluate_ratings(predictions_path: str, truth_path: str | None,
                      output_format: str) -> None:
    from recsdk.evaluation.evaluator import rating_errors
    from recsdk.evaluation.files import read_interactions, read_truth

    if not truth_path:
        raise click.UsageError("--predictions needs --truth")
    errors = rating_errors(read_truth(truth_path),
                           read_interactions(predictions_path, "predictions"))
    if output_format == "json":
        click.echo(json.dumps(errors))
    else:
        click.echo(f"rmse  {errors['rmse']:.4f}\nmae   {errors['mae']:.4f}\n"
                   f"pairs {int(errors['pairs'])}")


def _evaluate_file(recs_path: str, truth_path: str | None, train_path: str | None,
                   items_path: str | None, category_column: str,
                   embeddings_path: str | None, k: int, ks: list[int], output_format: str,
                   report_dir: str | None) -> None:
    from recsdk.evaluation.comparison import evaluate_recommendations
    from recsdk.evaluation.files import (
        read_embeddings,
        read_interactions,
        read_recommendations,
        read_truth,
    )
    from recsdk.evaluation.report import write_report
    from recsdk.evaluation.tables import text_table

    if not truth_path:
        raise click.UsageError("--recs needs --truth")
    truth = read_truth(truth_path)
    recs = read_recommendations(recs_path)
    result = evaluate_recommendations(
        Path(recs_path).stem, recs, truth, k=k, ks=ks,
        train=read_interactions(train_path, "train") if train_path else None,
        items=_read_items(items_path, category_column),
        embeddings=read_embeddings(embeddings_path) if embeddings_path else None,
    )
    if output_format == "json":
        click.echo(json.dumps(json_safe(dict(result.main))))
    else:
        click.echo(text_table([result]))
    if report_dir:
        html_path, _ = write_report([result], report_dir, f"Evaluation of {recs_path}",
                                    {"recommendations": recs_path, "truth": truth_path,
                                     "train": train_path or "-", "k": k})
        click.echo(f"report: {html_path}", err=True)


def _evaluate_plugins(config: str | None, train_path: str | None, test_path: str | None,
                      plugins: Sequence[str], params: Sequence[str], items_path: str | None,
                      category_column: str, embeddings_path: str | None, k: int,
                      ks: list[int], negatives: int | None, seed: int, output_format: str,
                      report_dir: str | None, save_recs: str | None) -> None:
    from recsdk.config import load_settings
    from recsdk.evaluation.comparison import evaluate_plugin
    from recsdk.evaluation.files import read_embeddings, read_interactions, write_table
    from recsdk.evaluation.specs import configured_specs, parse_plugin_specs

    if not train_path:
        raise click.UsageError("--test needs --train (the interactions to fit on)")
    if plugins:
        specs = parse_plugin_specs(plugins, params)
    else:
        if params:
            raise click.UsageError("--param needs --plugin")
        specs = configured_specs(load_settings(config).plugins)
        if not specs:
            raise click.UsageError("no --plugin given and no scoring plugin configured")
    train = read_interactions(train_path, "train")
    test = read_interactions(test_path, "test")  # type: ignore[arg-type]
    items = _read_items(items_path, category_column)
    embeddings = read_embeddings(embeddings_path) if embeddings_path else None
    results = []
    for spec in specs:
        result = evaluate_plugin(spec, train, test, k=k, ks=ks if report_dir else (),
                                 items=items, embeddings=embeddings, negatives=negatives,
                                 seed=seed, progress=True,
                                 keep_recommendations=bool(save_recs))
        if save_recs and result.recommendations is not None:
            write_table(result.recommendations, Path(save_recs) / f"{spec.label}.tsv")
        results.append(result)
    protocol = {"train": train_path, "test": test_path, "k": k,
                "candidates": f"{negatives} sampled negatives" if negatives
                else "all items (full ranking)", "training items": "filtered out",
                "seed": seed}
    _print_results(results, output_format, report_dir, "Plugin comparison", protocol)


def _print_results(results: Sequence[Any], output_format: str, report_dir: str | None,
                   title: str, protocol: dict[str, Any],
                   extra: dict[str, dict[str, Any]] | None = None) -> None:
    """The rows as a table or JSON (``extra``: more fields per label), and the report."""
    from recsdk.evaluation.report import write_report
    from recsdk.evaluation.tables import text_table

    if output_format == "json":
        click.echo(json.dumps({r.label: json_safe({**r.main, "fit_seconds": r.fit_seconds,
                                                   "score_seconds": r.score_seconds,
                                                   **(extra or {}).get(r.label, {})})
                               for r in results}))
    else:
        click.echo(text_table(list(results)))
    if report_dir:
        html_path, _ = write_report(list(results), report_dir, title, protocol)
        click.echo(f"report: {html_path}", err=True)


def _evaluate_served(config: str | None, train_path: str | None, test_path: str | None,
                     items_path: str | None, category_column: str,
                     embeddings_path: str | None, candidates_path: str | None,
                     placement: str, with_timeouts: bool, k: int, ks: list[int],
                     output_format: str, report_dir: str | None,
                     save_recs: str | None) -> None:
    from recsdk.evaluation.catalogue import read_catalogue
    from recsdk.evaluation.files import read_embeddings, read_interactions, write_table
    from recsdk.evaluation.served import evaluate_served, read_candidates

    if not train_path:
        raise click.UsageError("--test needs --train (the interactions to train on)")
    train = read_interactions(train_path, "train")
    test = read_interactions(test_path, "test")  # type: ignore[arg-type]
    catalogue = read_catalogue(items_path, category_column) if items_path else None
    candidates = read_candidates(candidates_path) if candidates_path else None
    label = Path(config).stem if config else "pipeline"
    if placement != "default":
        label = f"{label}@{placement}"
    evaluation = evaluate_served(
        config, train, test, k=k, ks=ks if report_dir else (), label=label,
        placement=placement, catalogue=catalogue, candidates=candidates,
        embeddings=read_embeddings(embeddings_path) if embeddings_path else None,
        timeouts=with_timeouts, progress=True)
    _warn_served(evaluation.lists, evaluation.uncatalogued)
    if evaluation.outside_candidates:
        click.echo(f"note: {evaluation.outside_candidates} test pair(s) name items outside "
                   "--candidates and are not scored", err=True)
    result = evaluation.result
    if save_recs and result.recommendations is not None:
        write_table(result.recommendations, Path(save_recs) / f"{label}.tsv")
    protocol = {"train": train_path, "test": test_path, "k": k,
                "configuration": config or "built-in defaults", "placement": placement,
                "pipeline": "served: recommend() of a RecSDK trained on the training file",
                "candidates": f"{len(candidates)} items of {candidates_path}" if candidates
                else "all items (full ranking)", "training items": "filtered out",
                "plugin time budgets": "as configured" if with_timeouts else "lifted"}
    _print_results([result], output_format, report_dir, "Served pipeline", protocol,
                   {label: {"degraded_lists": evaluation.lists.degraded}})


# --------------------------------------------------------------------------------------
# recommend-batch
# --------------------------------------------------------------------------------------


@click.command("recommend-batch")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Interactions to train on (user,item[,rating][,timestamp]).")
@click.option("--plugin", default=None,
              help="Fit this plugin alone (default: the configured pipeline, as served).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A --plugin parameter (JSON value or text).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--users", "users_path", type=click.Path(dir_okay=False),
              help="File with a user column: recommend for these (default: every user).")
@_catalog_options(served=True)
@_served_options
@click.option("--seed", type=int, default=42, show_default=True,
              help="--plugin runs: the plugin's seed.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write user,item,rank,score (TSV if it ends in .tsv).")
@click.pass_context
def recommend_batch(ctx: click.Context, train_path: str, plugin: str | None,
                    params: Sequence[str], k: int, users_path: str | None,
                    items_path: str | None, category_column: str, served_config: str | None,
                    placement: str, candidates_path: str | None, with_timeouts: bool,
                    seed: int, out_path: str) -> None:
    """Write every user's top k, their training items filtered out.

    \b
    The configured pipeline, through the same recommend() as serving:
      recsdk recommend-batch --train TRAIN [--config FILE] [--placement P]
        [--items CATALOGUE] [--candidates ITEMS] --out RECS
    One plugin fitted alone:
      recsdk recommend-batch --train TRAIN --plugin NAME [--param KEY=VALUE] --out RECS
    """

    def run() -> None:
        from recsdk.evaluation.files import read_interactions, read_users, write_table

        train = read_interactions(train_path, "train")
        users = read_users(users_path) if users_path else None
        if plugin:
            _refuse(ctx, ("served_config", "placement", "candidates_path", "with_timeouts"),
                    "apply to the served pipeline (without --plugin)")
            recommendations = _plugin_batch(train, plugin, params, users, k, items_path,
                                            category_column, seed)
            n_users = len(users) if users is not None else train["user"].nunique()
        else:
            _refuse(ctx, ("params", "seed"), "apply to --plugin runs; the served pipeline "
                    "takes its parameters and seed from the configuration")
            recommendations, n_users = _served_batch(
                _config(ctx, served_config), train, users, k, items_path, category_column,
                placement, candidates_path, with_timeouts)
        write_table(recommendations, out_path)
        click.echo(f"wrote {len(recommendations)} recommendations for "
                   f"{recommendations['user'].nunique()} of {n_users} users to {out_path}",
                   err=True)

    _run(run)


def _plugin_batch(train: Any, plugin: str, params: Sequence[str], users: list[str] | None,
                  k: int, items_path: str | None, category_column: str, seed: int) -> Any:
    from recsdk.evaluation.offline import FittedPlugin, catalog_from_items, implicit_dataset
    from recsdk.evaluation.specs import parse_plugin_specs

    (spec,) = parse_plugin_specs([plugin], params)
    items = _read_items(items_path, category_column)
    dataset = implicit_dataset(train, catalog_from_items(items) if items is not None else None)
    with FittedPlugin(spec, dataset, seed=seed) as fitted:
        return fitted.top_k(users or list(dataset.user_ids), k, progress=True).to_frame()


def _served_batch(config: str | None, train: Any, users: list[str] | None, k: int,
                  items_path: str | None, category_column: str, placement: str,
                  candidates_path: str | None, with_timeouts: bool) -> tuple[Any, int]:
    from recsdk.config import load_settings
    from recsdk.evaluation.catalogue import read_catalogue
    from recsdk.evaluation.served import ServedPipeline, check_placement, read_candidates

    check_placement(load_settings(config), placement)
    catalogue = read_catalogue(items_path, category_column) if items_path else None
    candidates = read_candidates(candidates_path) if candidates_path else None
    with ServedPipeline(config, train, catalogue=catalogue, timeouts=with_timeouts) as served:
        wanted = users if users is not None else served.user_ids
        lists = served.recommend(wanted, k, placement=placement, candidates=candidates,
                                 progress=True)
        uncatalogued = served.uncatalogued
    _warn_served(lists, uncatalogued)
    return lists.recommendations, len(wanted)


# --------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------


@click.command()
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Interactions to split (user,item[,rating][,timestamp]).")
@click.option("--method", type=click.Choice(["random", "temporal", "leave-last", "kfold"]),
              default="random", show_default=True)
@click.option("--test-ratio", type=float, default=0.2, show_default=True,
              help="random/temporal: share of interactions held out.")
@click.option("-n", "n", type=int, default=1, show_default=True,
              help="leave-last: interactions held out per user.")
@click.option("--folds", type=int, default=5, show_default=True, help="kfold: folds.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for train.tsv, test.tsv, split.json (kfold: fold-N/).")
def split(input_path: str, method: str, test_ratio: float, n: int, folds: int, seed: int,
          out_dir: str) -> None:
    """Split interactions into training and test files, deterministically for a seed."""

    def run() -> None:
        from recsdk.evaluation.files import read_interactions
        from recsdk.evaluation.splits import make_splits, save_splits

        splits = make_splits(read_interactions(input_path), method, test_ratio=test_ratio,
                             n=n, folds=folds, seed=seed)
        for path, s in zip(save_splits(splits, out_dir), splits, strict=True):
            click.echo(f"{path}: {len(s.train)} train, {len(s.test)} test rows", err=True)

    _run(run)


# --------------------------------------------------------------------------------------
# tune
# --------------------------------------------------------------------------------------


@click.command()
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Interactions to cross-validate on.")
@click.option("--plugin", required=True, help="Plugin entry point name.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="Values to try; with --random also KEY=uniform|loguniform|int:LOW:HIGH.")
@click.option("--random", "n_random", type=click.IntRange(min=1), default=None,
              help="Random search: try this many draws instead of the whole grid.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--metric", default="ndcg", show_default=True, help="Metric to optimise.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@_catalog_options(served=False)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
def tune(train_path: str, plugin: str, grid: Sequence[str], n_random: int | None,
         folds: int, metric: str, k: int, items_path: str | None, category_column: str,
         seed: int, output_format: str) -> None:
    """Grid or random search over a plugin's parameters with per-user k-fold CV."""

    def run() -> None:
        from recsdk.evaluation.files import read_interactions
        from recsdk.evaluation.specs import parse_grid, parse_space
        from recsdk.evaluation.tuning import grid_candidates, random_candidates, search

        candidates = (random_candidates(parse_space(grid), n_random, seed) if n_random
                      else grid_candidates(parse_grid(grid)))
        result = search(read_interactions(train_path, "train"), plugin, candidates,
                        folds=folds, metric=metric, k=k, seed=seed, progress=True,
                        items=_read_items(items_path, category_column))
        if output_format == "json":
            click.echo(json.dumps(json_safe(result.to_dict())))
            return
        for row in result.table.itertuples():
            click.echo(f"{metric}@{k} {row.mean:.4f} ± {row.std:.4f}  {json.dumps(row.params)}")
        click.echo(f"best: {json.dumps(result.best_params)} "
                   f"({metric}@{k} = {result.best_score:.4f})")

    _run(run)
