"""Results as text: an aligned terminal table and a Markdown table, one row per run.

Kept apart from the HTML report so printing a table never imports matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from recsdk.evaluation.comparison import RunResult
from recsdk.evaluation.evaluator import METRICS

TIMINGS = ("fit_seconds", "score_seconds")


def number(value: Any, digits: int = 4) -> str:
    """A fixed-precision cell; ``-`` for a metric that could not be computed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def columns_with_values(runs: Sequence[RunResult], metrics: Sequence[str]) -> list[str]:
    """The requested metrics that at least one run has a value for."""
    return [m for m in metrics if any(r.main.get(m) is not None for r in runs)]


def timing_columns(runs: Sequence[RunResult]) -> list[str]:
    """The timing fields that at least one run has (a scored file has none)."""
    return [t for t in TIMINGS if any(getattr(r, t) is not None for r in runs)]


def row_cells(run: RunResult, columns: Sequence[str], timings: Sequence[str]) -> list[str]:
    """One run's label, metric values and timings as text."""
    return ([run.label] + [number(run.main.get(c)) for c in columns]
            + [number(getattr(run, t), 2) for t in timings])


def text_table(runs: Sequence[RunResult], metrics: Sequence[str] = METRICS) -> str:
    """An aligned plain-text table, one row per run."""
    columns = columns_with_values(runs, metrics)
    timings = timing_columns(runs)
    header = ["run", *(f"{c}@{runs[0].k}" if runs else c for c in columns), *timings]
    rows = [header] + [row_cells(r, columns, timings) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def markdown_table(runs: Sequence[RunResult], metrics: Sequence[str] = METRICS) -> str:
    """A GitHub Markdown table, one row per run."""
    columns = columns_with_values(runs, metrics)
    timings = timing_columns(runs)
    header = ["plugin", *(f"{c}@{runs[0].k}" if runs else c for c in columns),
              *(t.replace("_seconds", " s") for t in timings)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row_cells(r, columns, timings)) + " |" for r in runs]
    return "\n".join(lines)
