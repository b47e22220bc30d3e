"""The monitoring plots: one PNG per placement, served lists' health over time.

Figures are plain :class:`~matplotlib.figure.Figure` objects drawn by the Agg canvas,
never through pyplot (as :mod:`recsdk.experiments.html` does): no global figure
registry holds them, so a long-lived server does not leak and two requests can draw at
once. Each PNG is embedded in the page as a data URL.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

#: The latency percentiles, each drawn in its variant's colour with its own line style.
PERCENTILES = (("latency_p50_ms", "p50", "-"), ("latency_p95_ms", "p95", "--"),
               ("latency_p99_ms", "p99", ":"))


def png(fig: Figure) -> str:
    """The figure as base64 PNG; cleared afterwards so that nothing holds on to it."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(name: str) -> str:
    """A legend label shown as written (matplotlib hides "_x" and reads "$x$")."""
    name = name.replace("$", r"\$")
    return f" {name}" if name.startswith("_") else name


def _time_axis(ax: Axes, since: datetime, until: datetime) -> None:
    ax.set_xlim(since, until)  # type: ignore[arg-type]
    locator = AutoDateLocator(maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _percent(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.set_ylabel("%")
    ax.set_ylim(bottom=0)


def placement_figure(series: pd.DataFrame, placement: str, since: datetime,
                     until: datetime) -> str:
    """``placement``'s rows of :func:`recsdk.monitoring.serving_series` as a 2x2 PNG:
    latency percentiles, error and degraded rates, CTR and conversion, one colour per
    variant; a bucket without lists has no point."""
    rows = series[series["placement"] == placement]
    fig = Figure(figsize=(10, 5.6))
    # fixed margins: the constrained layout would double the drawing time of a page
    # that draws one figure per placement
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.07, top=0.9, hspace=0.42,
                        wspace=0.16)
    latency, failures, ctr, conversion = fig.subplots(2, 2).ravel()
    fig.suptitle(f"placement {placement}: lists served per bucket")
    for colour, (variant, group) in enumerate(rows.groupby("variant", sort=True)):
        c = f"C{colour % 10}"
        times = [t.to_pydatetime() for t in pd.to_datetime(group["bucket"], utc=True)]
        name = _label(str(variant))
        for column, tag, style in PERCENTILES:
            latency.plot(times, group[column].to_numpy(dtype=float), style, color=c,
                         marker="o", markersize=3, label=f"{name} {tag}")
        failures.plot(times, 100 * group["error_rate"].to_numpy(dtype=float), "-", color=c,
                      marker="o", markersize=3, label=f"{name} errors")
        failures.plot(times, 100 * group["degraded_rate"].to_numpy(dtype=float), "--",
                      color=c, marker="x", markersize=4, label=f"{name} degraded")
        ctr.plot(times, 100 * group["ctr"].to_numpy(dtype=float), "-", color=c, marker="o",
                 markersize=3, label=name)
        conversion.plot(times, 100 * group["conversion_rate"].to_numpy(dtype=float), "-",
                        color=c, marker="o", markersize=3, label=name)
    latency.set_title("answer time percentiles")
    latency.set_ylabel("ms")
    latency.set_ylim(bottom=0)
    _percent(failures, "error and degraded rates")
    _percent(ctr, "click-through (lists clicked / lists)")
    _percent(conversion, "conversion (lists with a purchase / lists)")
    for ax in (latency, failures, ctr, conversion):
        if ax.has_data():
            ax.legend(fontsize="x-small", ncol=2)
        _time_axis(ax, since, until)
    return png(fig)


def placement_figures(series: pd.DataFrame, since: datetime, until: datetime
                      ) -> dict[str, str]:
    """One PNG per placement with lists in ``series``, by placement."""
    placements = sorted(set(series["placement"])) if len(series) else []
    return {p: placement_figure(series, p, since, until) for p in placements}

