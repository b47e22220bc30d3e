"""Write a comparison as an HTML report with figures and a JSON file with every number.

The HTML file is self-contained (figures embedded as PNG) so it can be mailed or
attached to a ticket; the JSON beside it holds every number for other tools.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from recsdk.evaluation.comparison import RunResult
from recsdk.evaluation.evaluator import LOWER_IS_BETTER, METRICS
from recsdk.evaluation.plots import (
    accuracy_against_beyond,
    metrics_against_k,
    png_bytes,
    popularity_distribution,
)
from recsdk.evaluation.tables import columns_with_values, number, timing_columns

PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f6f6f6; }
td.best { font-weight: bold; }
img { max-width: 100%; display: block; margin: 1em 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
</style></head><body>
<h1>$title</h1>
<h2>Protocol</h2>
<dl>$protocol</dl>
<h2>Metrics at k = $k</h2>
<p>Bold: best value in its column (lowest for gini and arp).</p>
$table
<h2>Metrics against k</h2>
<img alt="metrics against k" src="data:image/png;base64,$against_k">
<h2>Accuracy against coverage and novelty</h2>
<img alt="accuracy against coverage and novelty" src="data:image/png;base64,$tradeoff">
<h2>Popularity of recommended items</h2>
<img alt="popularity distribution" src="data:image/png;base64,$popularity">
</body></html>
""")


def report_dict(runs: Sequence[RunResult], title: str,
                protocol: Mapping[str, Any]) -> dict[str, Any]:
    """Everything in the report as plain JSON-ready data."""
    return {"title": title, "protocol": dict(protocol),
            "k": runs[0].k if runs else None, "results": [r.to_dict() for r in runs]}


def _html_table(runs: Sequence[RunResult]) -> str:
    columns = columns_with_values(runs, METRICS)
    timings = timing_columns(runs)
    best: dict[str, float] = {}
    for c in columns:
        values = [r.main[c] for r in runs if r.main.get(c) is not None]
        best[c] = (min if c in LOWER_IS_BETTER else max)(values)  # type: ignore[type-var]
    head = "".join(f"<th>{html.escape(h)}</th>"
                   for h in ["run", *columns, *timings])
    body = []
    for run in runs:
        cells = [f"<td>{html.escape(run.label)}</td>"]
        for c in columns:
            mark = ' class="best"' if len(runs) > 1 and run.main.get(c) == best[c] else ""
            cells.append(f"<td{mark}>{number(run.main.get(c))}</td>")
        cells += [f"<td>{number(getattr(run, t), 2)}</td>" for t in timings]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _embedded(figure: Any) -> str:
    return base64.b64encode(png_bytes(figure)).decode("ascii")


def write_report(runs: Sequence[RunResult], directory: str | Path,
                 title: str = "recsdk evaluation",
                 protocol: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` into ``directory``; return their paths."""
    if not runs:
        raise ValueError("nothing to report: no runs")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    protocol = dict(protocol or {})
    json_path, html_path = directory / "report.json", directory / "report.html"
    json_path.write_text(json.dumps(report_dict(runs, title, protocol), indent=2) + "\n",
                         encoding="utf-8")
    described = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                        for k, v in protocol.items())
    html_path.write_text(PAGE.substitute(
        title=html.escape(title), protocol=described, k=runs[0].k, table=_html_table(runs),
        against_k=_embedded(metrics_against_k(runs)),
        tradeoff=_embedded(accuracy_against_beyond(runs)),
        popularity=_embedded(popularity_distribution(runs)),
    ), encoding="utf-8")
    return html_path, json_path
