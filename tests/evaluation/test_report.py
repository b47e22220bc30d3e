"""Reports: the JSON holds every number, the HTML is self-contained, tables line up."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from recsdk.evaluation.comparison import RunResult
from recsdk.evaluation.report import write_report
from recsdk.evaluation.tables import markdown_table, text_table


def run(label: str, ndcg: float, coverage: float, gini: float) -> RunResult:
    by_k = {k: {"ndcg": ndcg * k / 10, "recall": ndcg / 2, "precision": ndcg / 3,
                "hit_rate": ndcg * 2, "coverage": coverage, "novelty": 2.0 + coverage,
                "gini": gini, "arp": None, "users": 12} for k in (5, 10)}
    return RunResult(label, by_k, 10, "popularity", {"count": "users"}, 0.5, 1.25,
                     np.array([1.0, 5.0, 50.0, 50.0]))


RUNS = [run("pop <b>", 0.3, 0.1, 0.9), run("other", 0.2, 0.4, 0.5)]


def test_report_files_hold_every_number_and_three_embedded_figures(tmp_path):
    html_path, json_path = write_report(RUNS, tmp_path / "out", "Test & report",
                                        {"split": "random 80/20"})
    data = json.loads(json_path.read_text())
    assert data["protocol"] == {"split": "random 80/20"} and data["k"] == 10
    first = data["results"][0]
    assert first["label"] == "pop <b>" and first["metrics"]["ndcg"] == 0.3
    assert first["metrics_at_k"]["5"]["ndcg"] == pytest.approx(0.15)
    assert first["params"] == {"count": "users"} and first["score_seconds"] == 1.25
    page = html_path.read_text()
    assert "pop &lt;b&gt;" in page and "pop <b>" not in page  # labels are escaped
    assert "<title>Test &amp; report</title>" in page
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)


def test_html_marks_the_best_value_per_column(tmp_path):
    html_path, _ = write_report(RUNS, tmp_path)
    page = html_path.read_text()
    assert '<td class="best">0.3000</td>' in page  # ndcg: higher is better
    assert '<td class="best">0.5000</td>' in page  # gini: lower is better
    assert '<td class="best">0.9000</td>' not in page


def test_an_empty_report_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        write_report([], tmp_path)


def test_text_table_aligns_columns_and_skips_metrics_nobody_has():
    lines = text_table(RUNS).splitlines()
    assert lines[0].split() == ["run", "precision@10", "recall@10", "ndcg@10", "hit_rate@10",
                                "coverage@10", "novelty@10", "gini@10", "fit_seconds",
                                "score_seconds"]
    assert len({len(line) for line in lines}) == 1
    assert "arp" not in lines[0]


def test_markdown_table_has_one_row_per_run():
    lines = markdown_table(RUNS, ("ndcg", "coverage")).splitlines()
    assert lines[0] == "| plugin | ndcg@10 | coverage@10 | fit s | score s |"
    assert lines[2] == "| pop <b> | 0.3000 | 0.1000 | 0.50 | 1.25 |"
    assert len(lines) == 4
