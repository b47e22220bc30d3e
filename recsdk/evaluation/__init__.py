"""Offline evaluation: splits, metrics at k, plugin comparison, tuning and reports.

Every algorithm plugin is measured through the same loop (:mod:`.offline`) and the
same metric definitions (:mod:`.metrics`, documented in ``docs/evaluation.md``), so
numbers from the command line, the benchmarks and the reports can be compared.
"""

from recsdk.evaluation.comparison import (
    RunResult,
    compare_plugins,
    evaluate_plugin,
    evaluate_recommendations,
    held_out_truth,
)
from recsdk.evaluation.evaluator import METRICS, EvaluationInput, evaluate, evaluation_input
from recsdk.evaluation.offline import FittedPlugin, PluginSpec, TopK, implicit_dataset
from recsdk.evaluation.splits import (
    Split,
    kfold_splits,
    leave_last_split,
    load_splits,
    make_splits,
    random_split,
    save_splits,
    temporal_split,
)
from recsdk.evaluation.tuning import SearchResult, grid_candidates, random_candidates, search

__all__ = [
    "METRICS",
    "EvaluationInput",
    "FittedPlugin",
    "PluginSpec",
    "RunResult",
    "SearchResult",
    "Split",
    "TopK",
    "compare_plugins",
    "evaluate",
    "evaluate_plugin",
    "evaluate_recommendations",
    "evaluation_input",
    "grid_candidates",
    "held_out_truth",
    "implicit_dataset",
    "kfold_splits",
    "leave_last_split",
    "load_splits",
    "make_splits",
    "random_candidates",
    "random_split",
    "save_splits",
    "search",
    "temporal_split",
]
