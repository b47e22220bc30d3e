"""``recsdk experiments``: the configured A/B tests, and each one's report.

``list`` reads the settings only; ``report`` reads the exposures and outcomes stored in
the database and prints a table, JSON, or an HTML page with the cumulative lift over
time (see docs/experiments.md, "Reports").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from recsdk.cli.session import open_sdk, settings_of

if TYPE_CHECKING:
    from recsdk.experiments.report import ExperimentReport


def register(group: click.Group) -> None:
    group.add_command(experiments)


@click.group()
def experiments() -> None:
    """A/B experiments declared under [experiments.NAME]."""


@experiments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the experiments as JSON.")
@click.pass_context
def list_experiments(ctx: click.Context, as_json: bool) -> None:
    """Name, placements, variants and shares, window, and whether each runs now."""
    configured = settings_of(ctx).experiments
    now = datetime.now(UTC)
    rows = [e.summary(now) for e in configured]
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    if not rows:
        click.echo("no experiments configured: add one under [experiments.NAME]")
        return
    for r in rows:
        variants = ", ".join(f"{n}={s:g}{' (control)' if n == r['control'] else ''}"
                             for n, s in r["variants"].items())
        if r["holdout"]:
            variants += f"; holdout {r['holdout']:g}"
        click.echo(f"{r['name']}: placements {', '.join(r['placements'])}; {variants}; "
                   f"from {r['start'] or 'always'} to {r['stop'] or 'open end'}; "
                   f"{'running' if r['running'] else 'not running'}")


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if percent else f"{value:.2f}"


@experiments.command("report")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table",
              show_default=True, help="html: one self-contained page with the cumulative "
              "lift over time plotted.")
@click.option("--attribution-days", type=click.FloatRange(min=0), default=7.0,
              show_default=True, help="Days after an exposure a purchase event is credited.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the report to this file instead of standard output.")
@click.pass_context
def report(ctx: click.Context, name: str, fmt: str, attribution_days: float,
           out: Path | None) -> None:
    """Per-variant counts, metrics and tests against the control of experiment NAME."""
    from recsdk.experiments.report import experiment_report  # numpy/scipy: only here

    configured = {e.name: e for e in settings_of(ctx).experiments}
    if name not in configured:
        known = ", ".join(sorted(configured)) or "none configured"
        raise click.ClickException(f"unknown experiment {name!r}; experiments: {known}")
    experiment = configured[name]
    now = datetime.now(UTC)  # the report and its series end at the same time
    with open_sdk(ctx, serve_models=False) as sdk:
        result = experiment_report(sdk.store, experiment, now=now,
                                   attribution_days=attribution_days)
        if fmt == "html":
            from recsdk.experiments.html import render_html  # matplotlib: only here
            from recsdk.experiments.timeseries import cumulative_series

            series = cumulative_series(sdk.store, experiment, now=now,
                                       attribution_days=attribution_days)
            text = render_html(result, series)
        elif fmt == "json":
            text = json.dumps(result.to_dict(), sort_keys=True) + "\n"
        else:
            text = _table(result, attribution_days)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write the report to {out}: {exc}") from exc
    click.echo(f"report written to {out}", err=True)


def _table(result: ExperimentReport, attribution_days: float) -> str:
    """The report as the plain-text table the terminal shows."""
    if result.message:
        return result.message + "\n"
    lines = [f"experiment {result.experiment} (control {result.control}), attribution "
             f"{attribution_days:g} days, {result.correction}-adjusted at alpha "
             f"{result.alpha:g}",
             f"{'variant':<16} {'exposures':>9} {'units':>7} {'CTR':>8} {'click':>8} "
             f"{'cart':>8} {'conv':>8} {'rev/unit':>9} {'AOV':>8} {'degraded':>8}"]
    for a in result.arms:
        m = a.metrics()
        lines.append(
            f"{a.name:<16} {a.exposures:>9} {a.units:>7} {_fmt(m['ctr'], True):>8} "
            f"{_fmt(m['click_rate'], True):>8} {_fmt(m['add_to_cart_rate'], True):>8} "
            f"{_fmt(m['conversion_rate'], True):>8} {_fmt(m['revenue_per_unit']):>9} "
            f"{_fmt(m['average_order_value']):>8} {_fmt(m['degraded_share'], True):>8}")
    for c in result.comparisons:
        low, high = c.lift_rel_ci
        rel = "-" if c.lift_rel != c.lift_rel else (
            f"{100 * c.lift_rel:+.1f}% [{100 * low:+.1f}%, {100 * high:+.1f}%]")
        lines.append(f"{c.treatment} vs {c.control} {c.metric}: lift {c.lift_abs:+.4g} "
                     f"({rel}), p {c.p_value:.4g}, adjusted {c.p_value_adjusted:.4g}"
                     f"{' *' if c.significant else ''}")
    lines += [f"not computed: {s}" for s in result.skipped]
    srm = "-" if result.srm_p_value is None else f"{result.srm_p_value:.4g}"
    warn = " MISMATCH: assignment or logging is broken, do not trust the comparisons" \
        if result.srm_mismatch else ""
    lines.append(f"sample ratio p-value {srm}{warn}")
    lines.append(f"winner: {result.winner or 'none (no significant conversion gain)'}")
    lines += _extras(result)
    return "\n".join(lines) + "\n"


def _extras(result: ExperimentReport) -> list[str]:
    """Guardrails, CUPED, the sequential tests and the ROI, one line each."""
    lines = []
    for a in result.arms:
        g = a.guardrails()
        lines.append(f"guardrails {a.name}: latency p50/p95/p99 {_fmt(g['latency_p50_ms'])}/"
                     f"{_fmt(g['latency_p95_ms'])}/{_fmt(g['latency_p99_ms'])} ms, errors "
                     f"{_fmt(g['error_rate'], True)}, degraded "
                     f"{_fmt(g['degraded_rate'], True)}")
    lines += [f"GUARDRAIL {c.treatment} {c.metric} worse than {c.control}: "
              f"{_fmt(c.estimate_treatment, True)} against {_fmt(c.estimate_control, True)}, "
              f"p {c.p_value:.4g}" for c in result.guardrails if c.significant and c.lift_abs > 0]
    for x in result.cuped:
        c = x.comparison
        lines.append(f"cuped {x.variant} revenue_per_unit: lift {c.lift_abs:+.4g} "
                     f"[{c.lift_abs_ci[0]:+.4g}, {c.lift_abs_ci[1]:+.4g}], p {c.p_value:.4g}, "
                     f"variance -{100 * x.variance_reduction:.0f}%")
    for t in result.sequential:
        variant, _, metric = t.metric.partition(":")
        lines.append(f"always-valid {variant} {metric}: p {t.p_value:.4g}"
                     f"{' *' if t.rejected_at is not None else ''}")
    if result.roi is not None:
        r = result.roi
        roi = "-" if r.roi is None else f"{100 * r.roi:+.0f}%"
        lines.append(f"placement vs holdout: incremental revenue {r.incremental_revenue:+.2f} "
                     f"[{r.incremental_revenue_ci[0]:+.2f}, "
                     f"{r.incremental_revenue_ci[1]:+.2f}], costs {r.costs:.2f}, net "
                     f"{r.net_gain:+.2f}, ROI {roi}")
    return lines
