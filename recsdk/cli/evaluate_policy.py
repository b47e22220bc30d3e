"""``recsdk evaluate-policy``: estimate a policy's value from logged lists with propensities.

The command parses arguments, loads the log (the configured database's impressions and
feedback, or a log file) and the target policy, and prints what
:func:`recsdk.evaluation.policy_evaluation.evaluate_policy` finds; the formulas and
assumptions are in ``docs/off_policy.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from recsdk.cli.evaluate import _run
from recsdk.cli.session import safe_url, settings_of, user_errors
from recsdk.jsonable import json_safe

if TYPE_CHECKING:
    from recsdk.evaluation.policy_evaluation import PolicyEvaluation
    from recsdk.evaluation.policy_logs import PolicyLog, RewardMapping
    from recsdk.evaluation.target_policies import TargetPolicy

TARGETS = ("--target-config", "--target-file", "--target-logging", "--target-column")


def register(group: click.Group) -> None:
    group.add_command(evaluate_policy)


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time; naive values are UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected an ISO 8601 date or time, got {value!r}",
                                 param_hint=option) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("evaluate-policy")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="Log file of impressions (request_id,item_id,position,propensity"
                   "[,user_id][,session_id][,reward][,target_propensity]); CSV, TSV, JSONL "
                   "or Parquet. Default: the configured database's impressions and feedback.")
@click.option("--feedback", "feedback_path", type=click.Path(dir_okay=False),
              help="With --log and no reward column: feedback rows "
                   "(request_id,item_id,type[,value]).")
@click.option("--reward", "rewards", multiple=True, metavar="TYPE=NUMBER|TYPE=value",
              help="Reward of a feedback type; 'value' takes the row's value (a purchase's "
                   "amount). Repeat per type. Default: click=1.")
@click.option("--placement", default=None,
              help="Database: only lists served at this placement; also the placement the "
                   "--target-config pipeline recommends for (default: 'default').")
@click.option("--since", default=None, help="Database: lists served at or after this time.")
@click.option("--until", default=None, help="Database: lists served before this time.")
@click.option("--drop-incomplete", is_flag=True,
              help="Database: leave out lists with an impression without propensity "
                   "(default: such lists are an error).")
@click.option("--target-config", "target_config", type=click.Path(dir_okay=False),
              help="Target: the pipeline of these settings (TOML) with their active trained "
                   "run re-ranks each logged list's items for its user.")
@click.option("--target-file", "target_file", type=click.Path(dir_okay=False),
              help="Target: a file of request_id,position,item_id,probability rows.")
@click.option("--target-logging", is_flag=True,
              help="Target: the logging policy itself (a sanity check: IPS is the logged "
                   "mean).")
@click.option("--target-column", is_flag=True,
              help="Target: the log file's target_propensity column (no DR).")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="--target-config: draws of the pipeline per list (for randomised "
                   "rerankers).")
@click.option("--clip", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Cap every importance weight at this value (less variance, some bias).")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True, help="Confidence level of the intervals.")
@click.option("--interval", type=click.Choice(["normal", "bootstrap"]), default="normal",
              show_default=True, help="Normal approximation, or a percentile bootstrap over "
                                      "requests.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-fitting folds of DR's reward model.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the cross-fitting folds and the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def evaluate_policy(ctx: click.Context, log_path: str | None, feedback_path: str | None,
                    rewards: Sequence[str], placement: str | None, since: str | None,
                    until: str | None, drop_incomplete: bool, target_config: str | None,
                    target_file: str | None, target_logging: bool, target_column: bool,
                    samples: int, clip: float | None, confidence: float, interval: str,
                    folds: int, seed: int, as_json: bool) -> None:
    """Estimate a target policy's value (expected reward per list) from logged lists.

    \b
    From the configured database's impressions (with propensities) and feedback:
      recsdk evaluate-policy --target-config new.toml --reward click=1 \\
        --reward purchase=value [--placement P] [--since 2026-01-01]
    From a log file:
      recsdk evaluate-policy --log log.csv [--feedback feedback.csv] \\
        --target-file target.csv | --target-logging | --target-column
    """
    chosen = [name for name, given in zip(TARGETS, (target_config, target_file,
                                                    target_logging, target_column),
                                          strict=True) if given]
    if len(chosen) != 1:
        raise click.UsageError(f"give exactly one target: {', '.join(TARGETS)}; "
                               f"got {', '.join(chosen) or 'none'}")
    if log_path is None and feedback_path is not None:
        raise click.UsageError("--feedback goes with --log (the database has its own)")
    if log_path is not None and (since or until or drop_incomplete):
        raise click.UsageError("--since, --until and --drop-incomplete select lists in the "
                               "database, not in --log")
    if samples != 1 and not target_config:
        raise click.UsageError("--samples applies to --target-config")
    start, end = _moment(since, "--since"), _moment(until, "--until")

    def run() -> None:
        from recsdk.evaluation.policy_evaluation import evaluate_policy as estimate
        from recsdk.evaluation.policy_logs import RewardMapping

        mapping = RewardMapping.parse(rewards)
        if log_path is not None:
            from recsdk.evaluation.policy_logs import read_log_file

            log = read_log_file(log_path, mapping, feedback_path)
            if rewards and log.reward is None:
                raise click.UsageError("--reward maps feedback types, but the log has its "
                                       "own reward column")
        else:
            log = _database_log(ctx, mapping, placement, start, end, drop_incomplete)
        target = _target(log, target_config, target_file, target_logging, placement,
                         samples)
        evaluation = estimate(log, target, clip=clip, confidence=confidence,
                              interval=interval, folds=folds, seed=seed)
        for warning in evaluation.warnings:
            click.echo(f"warning: {warning}", err=True)
        if as_json:
            click.echo(json.dumps(json_safe(evaluation.to_dict()), sort_keys=True))
        else:
            _print(evaluation)

    with user_errors():
        _run(run)


def _database_log(ctx: click.Context, mapping: RewardMapping, placement: str | None,
                  since: datetime | None, until: datetime | None,
                  drop_incomplete: bool) -> PolicyLog:
    from recsdk.evaluation.policy_logs import load_database_log
    from recsdk.storage.store import Store

    url = settings_of(ctx).database_url
    with user_errors(url):
        store = Store(url)
        try:
            store.ensure_schema(migrate=False)
            return load_database_log(store.engine, mapping, placement=placement, since=since,
                                     until=until, drop_incomplete=drop_incomplete,
                                     source=f"database {safe_url(url)}")
        finally:
            store.close()


def _target(log: PolicyLog, config: str | None, path: str | None, logging: bool,
            placement: str | None, samples: int) -> TargetPolicy:
    from recsdk.evaluation import target_policies

    if logging:
        return target_policies.logging_target(log)
    if path:
        return target_policies.file_target(log, path)
    if not config:
        return target_policies.column_target(log)
    from recsdk.sdk import RecSDK

    with RecSDK(config, migrate=False) as sdk:
        name = f"pipeline of {config} (run {sdk.model_run})"
        return target_policies.pipeline_target(log, sdk, placement=placement or "default",
                                               samples=samples, name=name, progress=True)


def _print(evaluation: PolicyEvaluation) -> None:
    reward = ("the log's reward column" if evaluation.reward is None else
              ", ".join(f"{kind}={value:g}" if isinstance(value, float) else f"{kind}={value}"
                        for kind, value in evaluation.reward.items()))
    click.echo(f"target   {evaluation.target}")
    click.echo(f"log      {evaluation.source}: {evaluation.requests} lists, "
               f"{evaluation.impressions} impressions")
    click.echo(f"reward   {reward} (summed over each list)")
    level = f"{evaluation.confidence:.0%} interval"
    click.echo(f"\n  {'estimator':<9}  {'value':>10}  {'std err':>10}  {level}")
    rows = [("logged", evaluation.logged), *evaluation.estimates.items()]
    for name, estimate in rows:
        if estimate is None:
            click.echo(f"  {name:<9}  {'-':>10}  {'-':>10}  -")
            continue
        click.echo(f"  {name:<9}  {estimate.value:>10.4f}  {estimate.std_error:>10.4f}  "
                   f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}]")
    clip = f", {evaluation.clipped} weight(s) clipped at {evaluation.clip:g}" \
        if evaluation.clip is not None else ""
    click.echo(f"\neffective sample size {evaluation.effective_sample_size:.1f} of "
               f"{evaluation.impressions} impressions; the target can show "
               f"{evaluation.matched_share:.1%} of them; largest weight "
               f"{evaluation.max_weight:.3g}{clip}")
    click.echo("logged: the logging policy's own mean (no weights)")
    for note in evaluation.notes:
        click.echo(f"note: {note}")
