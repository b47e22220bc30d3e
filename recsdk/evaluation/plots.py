"""Figures for evaluation reports, drawn with matplotlib's object API (no global state).

Tables say which plugin wins at one k; these show whether it still wins at other k,
what its accuracy costs in catalogue coverage and novelty, and how strongly it leans
on popular items.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from recsdk.evaluation.comparison import RunResult

ACCURACY_AGAINST_K = ("ndcg", "recall", "precision", "hit_rate")


def metrics_against_k(runs: Sequence[RunResult],
                      names: Sequence[str] = ACCURACY_AGAINST_K) -> Figure:
    """One panel per metric, one line per run, k on the x axis."""
    figure = Figure(figsize=(3.2 * len(names), 3.0), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        for run in runs:
            ks = sorted(run.metrics)
            values = [run.metrics[k].get(name) for k in ks]
            ax.plot(ks, [np.nan if v is None else v for v in values], marker="o",
                    label=run.label)
        ax.set_xlabel("k")
        ax.set_title(f"{name}@k")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return figure


def accuracy_against_beyond(runs: Sequence[RunResult], accuracy: str = "ndcg",
                            beyond: Sequence[str] = ("coverage", "novelty")) -> Figure:
    """Scatter of accuracy against each beyond-accuracy metric, one point per run."""
    figure = Figure(figsize=(3.6 * len(beyond), 3.2), layout="constrained")
    axes = figure.subplots(1, len(beyond), squeeze=False)[0]
    for ax, name in zip(axes, beyond, strict=True):
        for run in runs:
            x, y = run.main.get(name), run.main.get(accuracy)
            if x is None or y is None:
                continue
            ax.scatter([x], [y])
            ax.annotate(run.label, (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize="small")
        ax.set_xlabel(name)
        ax.set_ylabel(f"{accuracy}@{runs[0].k}" if runs else accuracy)
        ax.grid(alpha=0.3)
    return figure


def popularity_distribution(runs: Sequence[RunResult], bins: int = 20) -> Figure:
    """Histogram of the training popularity of recommended items, one outline per run.

    Each run's bars sum to 1, so runs with different numbers of lists compare directly.
    """
    figure = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = figure.subplots()
    values = [r.recommended_popularity for r in runs if len(r.recommended_popularity)]
    top = max((float(v.max()) for v in values), default=1.0)
    edges = np.logspace(0, np.log10(max(top, 1.0) + 1.0), bins + 1)
    for run in runs:
        if len(run.recommended_popularity):
            share = np.full(len(run.recommended_popularity), 1.0 / len(run.recommended_popularity))
            ax.hist(np.maximum(run.recommended_popularity, 1.0), bins=edges, weights=share,
                    histtype="step", linewidth=1.5, label=run.label)
    ax.set_xscale("log")
    ax.set_xlabel("training users who had the item (log)")
    ax.set_ylabel("share of recommendations")
    ax.set_title("Popularity of what was recommended")
    if values:
        ax.legend(fontsize="small")
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes (for embedding in HTML or writing to a file)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
