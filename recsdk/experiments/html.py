"""An experiment's report as one self-contained HTML page, with cumulative lift plots.

The page needs nothing else: the styles are inline, there is no script, and the plots
are PNGs (matplotlib's Agg renderer) embedded as base64 data URLs, so it can be mailed
or archived as one file. Figures are built as plain :class:`~matplotlib.figure.Figure`
objects, never through pyplot, so no global figure registry holds them (a long-lived
server does not leak) and two requests can render at once. Every string that comes from
configuration or storage is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from html import escape

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from recsdk.experiments.report import ExperimentReport
from recsdk.experiments.timeseries import LiftSeries

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; }
.warning { background: #fde2e1; border: 2px solid #c0392b; padding: 0.6em; font-weight: bold; }
.significant { font-weight: bold; }
img { max-width: 100%; }
"""


# --------------------------------------------------------------------------- formatting


def _num(value: float | None, spec: str = ".4g") -> str:
    """A number, or a dash for one that is missing (None, NaN)."""
    return "–" if value is None or math.isnan(value) else format(value, spec)


def _pct(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None or math.isnan(value) else f"{format(100 * value, spec)}%"


def _with_ci(value: float, ci: Sequence[float], percent: bool) -> str:
    if math.isnan(value):
        return "–"
    if percent:
        return f"{_pct(value, '+.1f')} [{_pct(ci[0], '+.1f')}, {_pct(ci[1], '+.1f')}]"
    return f"{_num(value, '+.4g')} [{_num(ci[0], '+.4g')}, {_num(ci[1], '+.4g')}]"


def _time(value: datetime | None) -> str:
    return "–" if value is None else value.isoformat(timespec="seconds")


def _row(cells: Iterable[object], tag: str = "td", cls: str | None = None) -> str:
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<{tag}>{escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _table(header: Sequence[str], rows: Iterable[str]) -> str:
    return f"<table><thead>{_row(header, 'th')}</thead><tbody>{''.join(rows)}</tbody></table>"


# --------------------------------------------------------------------------- plots


def _png(fig: Figure) -> str:
    """The figure as a base64 PNG (Agg); the figure is cleared so nothing holds on to it."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _time_axis(ax: Axes, times: Sequence[datetime]) -> None:
    """Dates on x, spanning the cuts even where a panel has nothing to draw (and at
    least two hours, so that a single cut still gets a readable axis)."""
    if times:
        pad = max((times[-1] - times[0]) * 0.03, timedelta(hours=1))
        ax.set_xlim(times[0] - pad, times[-1] + pad)  # type: ignore[arg-type]
    locator = AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _label(name: str) -> str:
    """A legend label that shows ``name`` as written: matplotlib hides labels that start
    with "_" and reads "$...$" as mathtext."""
    name = name.replace("$", r"\$")
    return f" {name}" if name.startswith("_") else name


def _lift_figure(series: LiftSeries) -> Figure | None:
    """One panel per metric: each variant's cumulative relative lift (%) and its interval
    band over time, with a zero line; None when no comparison was ever computed."""
    metrics = list(dict.fromkeys(c.metric for c in series.comparisons))
    if not metrics:
        return None
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(5.5 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        defined = False
        for c in (c for c in series.comparisons if c.metric == metric):
            lift = 100 * np.array(c.lift_rel, dtype=float)
            ci = 100 * np.array(c.lift_rel_ci, dtype=float).reshape(-1, 2)
            (line,) = ax.plot(series.times, lift, marker="o", markersize=3,
                              label=_label(c.variant))
            ax.fill_between(series.times, ci[:, 0], ci[:, 1], color=line.get_color(),
                            alpha=0.2, linewidth=0)
            defined = defined or bool(np.isfinite(lift).any())
        if not defined:
            ax.text(0.5, 0.6, "no relative lift yet\n(the control is at 0, or too few units)",
                    transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(metric)
        ax.set_ylabel(f"lift vs {_label(series.control)} (%)")
        ax.legend(fontsize="small")
        _time_axis(ax, series.times)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    return fig


def _units_figure(series: LiftSeries) -> Figure:
    """Cumulative units per arm over time."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    for arm in series.arms:
        ax.plot(series.times, arm.units, marker="o", markersize=3, label=_label(arm.name))
    ax.set_title("cumulative units per arm")
    ax.set_ylabel("units")
    ax.legend(fontsize="small")
    _time_axis(ax, series.times)
    return fig


def _image(fig: Figure, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


# --------------------------------------------------------------------------- sections


def _header(report: ExperimentReport, series: LiftSeries) -> str:
    start = series.first_exposure
    items = [
        ("control", report.control),
        ("window", f"{_time(start)} (first exposure) to {_time(report.generated_at)}"
         if start else f"up to {_time(report.generated_at)}"),
        ("attribution", f"{report.attribution_days:g} days, last touch"),
        ("correction", f"{report.correction} at alpha {report.alpha:g}"),
        ("generated at", _time(report.generated_at)),
    ]
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f"<h1>Experiment {escape(report.experiment)}</h1><dl class=\"meta\">{meta}</dl>"


def _arms_table(report: ExperimentReport) -> str:
    header = ["variant", "exposures", "units", "clicks", "add-to-carts", "purchases",
              "revenue", "CTR", "click rate", "cart rate", "conversion", "revenue/unit",
              "AOV", "degraded"]
    rows = []
    for a in report.arms:
        m = a.metrics()
        rows.append(_row([a.name, a.exposures, a.units, a.clicks, a.add_to_carts, a.purchases,
                          _num(a.revenue, ".2f"), _pct(m["ctr"]), _pct(m["click_rate"]),
                          _pct(m["add_to_cart_rate"]), _pct(m["conversion_rate"]),
                          _num(m["revenue_per_unit"], ".2f"),
                          _num(m["average_order_value"], ".2f"), _pct(m["degraded_share"])]))
    return "<h2>Variants</h2>" + _table(header, rows)


def _comparisons_table(report: ExperimentReport) -> str:
    if not report.comparisons:
        return "<h2>Comparisons with the control</h2><p>No comparison could be computed.</p>"
    header = ["variant", "metric", "control", "variant value", "lift (abs) [CI]",
              "lift (rel) [CI]", "p", "adjusted p", "significant"]
    rows = [_row([c.treatment, c.metric, _num(c.estimate_control),
                  _num(c.estimate_treatment), _with_ci(c.lift_abs, c.lift_abs_ci, False),
                  _with_ci(c.lift_rel, c.lift_rel_ci, True), _num(c.p_value),
                  _num(c.p_value_adjusted), "yes" if c.significant else "no"],
                 cls="significant" if c.significant else None)
            for c in report.comparisons]
    level = f"{100 * (1 - report.alpha):g}%"
    return (f"<h2>Comparisons with the control</h2><p>Lifts are variant minus control "
            f"(abs) and variant / control - 1 (rel), with {escape(level)} intervals; "
            f"p-values {escape(report.correction)}-adjusted over every variant and "
            f"metric.</p>" + _table(header, rows))


def _srm_section(report: ExperimentReport) -> str:
    observed = ", ".join(f"{a.name} {a.units}" for a in report.arms)
    expected = ", ".join(f"{n} {_pct(s, '.1f')}" for n, s in report.expected_shares.items())
    text = (f"<h2>Sample ratio</h2><p>Units per arm: {escape(observed)}; expected shares: "
            f"{escape(expected or '–')}; chi-square p-value {escape(_num(report.srm_p_value))}"
            f".</p>")
    if report.srm_mismatch:
        text += ('<p class="warning" role="alert">Sample ratio mismatch (p &lt; 0.001): '
                 "assignment or logging is broken, do not trust the comparisons.</p>")
    return text


def _guardrails_table(report: ExperimentReport) -> str:
    header = ["variant", "latency p50 ms", "p95 ms", "p99 ms", "error rate", "degraded rate",
              "seen rate", "CTR of seen lists", "revenue/session"]
    rows = []
    for a in report.arms:
        g, m = a.guardrails(), a.metrics()
        worse = [c.metric for c in report.guardrails
                 if c.treatment == a.name and c.significant and c.lift_abs > 0]
        rows.append(_row([a.name, _num(g["latency_p50_ms"], ".1f"),
                          _num(g["latency_p95_ms"], ".1f"), _num(g["latency_p99_ms"], ".1f"),
                          _pct(g["error_rate"]), _pct(g["degraded_rate"]), _pct(m["seen_rate"]),
                          _pct(m["ctr_seen"]), _num(m["revenue_per_session"], ".2f")],
                         cls="warning" if worse else None))
    alarms = "".join(f'<p class="warning" role="alert">Guardrail: {escape(c.treatment)}\'s '
                     f"{escape(c.metric)} is worse than {escape(c.control)}'s "
                     f"({_pct(c.estimate_treatment)} against {_pct(c.estimate_control)}, "
                     f"p {_num(c.p_value)}).</p>"
                     for c in report.guardrails if c.significant and c.lift_abs > 0)
    return "<h2>Guardrails</h2>" + _table(header, rows) + alarms


def _more_tests(report: ExperimentReport) -> str:
    """CUPED and the always-valid sequential tests, beside the corrected comparisons."""
    text = ""
    if report.cuped:
        rows = [_row([x.variant, _with_ci(x.comparison.lift_abs, x.comparison.lift_abs_ci,
                                          False), _num(x.comparison.p_value),
                      _num(x.correlation, ".2f"), _pct(x.variance_reduction, ".0f")])
                for x in report.cuped]
        text += ("<h2>Revenue per unit with CUPED</h2><p>Each unit's pre-period revenue as "
                 "covariate: the same effect with less variance.</p>"
                 + _table(["variant", "lift (abs) [CI]", "p", "correlation",
                           "variance removed"], rows))
    if report.sequential:
        rows = []
        for t in report.sequential:
            variant, _, metric = t.metric.partition(":")
            rows.append(_row([variant, metric, _with_ci(t.estimates[-1], t.ci, False),
                              _num(t.p_value), "yes" if t.rejected_at is not None else "no"]))
        text += ("<h2>Always-valid sequential tests (mSPRT)</h2><p>Valid however often "
                 "this report is read.</p>"
                 + _table(["variant", "metric", "lift [confidence sequence]",
                           "always-valid p", "significant"], rows))
    return text


def _roi_section(report: ExperimentReport) -> str:
    r = report.roi
    if r is None:
        return ""
    rows = [_row(cells) for cells in (
        ["revenue per unit, holdout / treated",
         f"{_num(r.comparison.estimate_control, '.2f')} / "
         f"{_num(r.comparison.estimate_treatment, '.2f')}"],
        ["incremental revenue [CI]", _with_ci(r.incremental_revenue,
                                              r.incremental_revenue_ci, False)],
        ["margin", _num(r.margin, "g")],
        ["costs (compute + licences)", f"{_num(r.costs, '.2f')} ({_num(r.compute_cost, '.2f')}"
                                       f" + {_num(r.licence_cost, '.2f')})"],
        ["net gain [CI]", _with_ci(r.net_gain, r.net_gain_ci, False)],
        ["ROI", _pct(r.roi, "+.0f")])]
    return ("<h2>Return against the holdout</h2><p>The placement's units against the "
            f"holdout's over {_num(r.days, '.1f')} days.</p>"
            + _table(["", "value"], rows))


def _notes(report: ExperimentReport) -> str:
    winner = report.winner or "none (no significant conversion gain)"
    text = f"<h2>Winner</h2><p>{escape(winner)}</p>"
    if report.skipped:
        items = "".join(f"<li>not computed: {escape(s)}</li>" for s in report.skipped)
        text += f"<h2>Not computed</h2><ul>{items}</ul>"
    return text


def _plots(series: LiftSeries) -> str:
    if not series.times:
        return ""
    text = (f"<h2>Over time</h2><p>The report at {len(series.times)} cut(s) from the first "
            "exposure to the report's time: cumulative figures, not daily ones.</p>")
    lift = _lift_figure(series)
    if lift is None:
        text += "<p>No comparison was computed at any cut, so there is no lift to plot.</p>"
    else:
        text += _image(lift, "cumulative relative lift of each metric per variant, "
                             "with its confidence band")
    return text + _image(_units_figure(series), "cumulative units per arm")


def plot_pngs(series: LiftSeries) -> dict[str, str]:
    """The page's plots as base64 PNGs, for a page that embeds them beside its own
    tables (the demo shop's dashboard): ``lift`` (when a comparison was computed at some
    cut) and ``units``; none without cuts."""
    if not series.times:
        return {}
    lift = _lift_figure(series)
    plots = {} if lift is None else {"lift": _png(lift)}
    plots["units"] = _png(_units_figure(series))
    return plots


def render_html(report: ExperimentReport, series: LiftSeries) -> str:
    """The report and its series (of the same experiment) as one self-contained page; a
    report without exposures shows its message and no plots."""
    if series.experiment != report.experiment:
        raise ValueError(f"series is of experiment {series.experiment!r}, the report of "
                         f"{report.experiment!r}")
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Experiment {escape(report.experiment)}</title>"
            f"<style>{_STYLE}</style></head><body>")
    body = _header(report, series)
    if report.message:
        body += f"<p>{escape(report.message)}</p>"
    else:
        body += (_arms_table(report) + _comparisons_table(report) + _srm_section(report)
                 + _guardrails_table(report) + _more_tests(report) + _roi_section(report)
                 + _notes(report) + _plots(series))
    return f"{head}{body}</body></html>\n"
