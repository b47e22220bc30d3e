"""A ledger of what loading and cleaning did to the rows, so nothing vanishes silently.

Every rule that drops, skips or changes rows records one :class:`RuleOutcome` with a
count, the reason and a few example rows. :meth:`CleaningReport.check_balance` proves
that every input row is either kept or counted as dropped by exactly one rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Action = Literal["dropped", "changed", "kept", "error"]

#: How many example rows a rule keeps by default.
DEFAULT_EXAMPLES = 5


@dataclass
class RuleOutcome:
    """One rule's effect: how many rows it dropped or changed, why, and examples.

    ``examples`` are dicts with ``row`` (the 0-based position in the frame the rule
    was applied to, the way :func:`recsdk.schemas.load_many` numbers rows) and the
    fields that show the problem.
    """

    rule: str
    action: Action
    count: int
    reason: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "count": self.count,
                "reason": self.reason, "examples": self.examples}


@dataclass
class CleaningReport:
    """What happened to ``input_rows`` rows of one table (``what``)."""

    what: str = "events"
    input_rows: int = 0
    kept_rows: int = 0
    rules: list[RuleOutcome] = field(default_factory=list)

    @property
    def dropped_rows(self) -> int:
        return sum(r.count for r in self.rules if r.action == "dropped")

    def outcome(self, rule: str) -> RuleOutcome | None:
        """The outcome of ``rule``, or None when it touched no row."""
        return next((r for r in self.rules if r.rule == rule), None)

    def count(self, rule: str) -> int:
        found = self.outcome(rule)
        return 0 if found is None else found.count

    def add(self, rule: str, action: Action, rows: pd.DataFrame | pd.Series | np.ndarray,
            reason: str, *, frame: pd.DataFrame | None = None,
            columns: Iterable[str] = (), examples: int = DEFAULT_EXAMPLES) -> None:
        """Record ``rule`` for the rows of ``frame`` selected by the boolean ``rows``.

        Nothing is recorded when no row is selected. Example rows show ``columns``.
        """
        mask = np.asarray(rows, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return
        sample: list[dict[str, Any]] = []
        if frame is not None:
            positions = np.flatnonzero(mask)[:examples]
            wanted = [c for c in columns if c in frame.columns]
            for pos in positions:
                row = {"row": _row_number(frame, int(pos))}
                for c in wanted:
                    row[c] = _plain(frame[c].iat[pos])
                sample.append(row)
        self.rules.append(RuleOutcome(rule, action, n, reason, sample))

    def note(self, rule: str, action: Action, count: int, reason: str,
             examples: list[dict[str, Any]] | None = None) -> None:
        """Record a rule whose rows are counted elsewhere (e.g. per user or per id)."""
        if count:
            self.rules.append(RuleOutcome(rule, action, int(count), reason, examples or []))

    def check_balance(self) -> None:
        """Raise when input rows are not exactly kept rows plus dropped rows."""
        missing = self.input_rows - self.kept_rows - self.dropped_rows
        if missing:
            raise AssertionError(
                f"{self.what}: {self.input_rows} rows in, {self.kept_rows} kept and "
                f"{self.dropped_rows} dropped: {missing} rows unaccounted for")

    def extend(self, other: CleaningReport) -> None:
        """Append another table's rules, prefixed with its name."""
        for r in other.rules:
            self.rules.append(RuleOutcome(f"{other.what}.{r.rule}", r.action, r.count,
                                          r.reason, r.examples))

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "input_rows": self.input_rows,
                "kept_rows": self.kept_rows, "dropped_rows": self.dropped_rows,
                "rules": [r.to_dict() for r in self.rules]}

    def format(self, max_examples: int = 3) -> str:
        """A human-readable summary, one line per rule plus example rows."""
        lines = [f"{self.what}: {self.input_rows} rows in, {self.kept_rows} kept, "
                 f"{self.dropped_rows} dropped"]
        for r in self.rules:
            lines.append(f"  {r.rule}: {r.action} {r.count} - {r.reason}")
            for ex in r.examples[:max_examples]:
                lines.append(f"      e.g. {_short(ex)}")
        return "\n".join(lines)


def _row_number(frame: pd.DataFrame, pos: int) -> int:
    """The row's original number when the frame carries one, else its position."""
    if "_row" in frame.columns:
        return int(frame["_row"].iat[pos])
    return pos


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a cell, for examples."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _short(example: Mapping[str, Any], width: int = 160) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in example.items())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class LoadReport:
    """One :class:`CleaningReport` per table that loading read (events, items, ...)."""

    source: str = ""
    tables: dict[str, CleaningReport] = field(default_factory=dict)

    def table(self, what: str) -> CleaningReport:
        """The report of table ``what``, created empty on first use."""
        if what not in self.tables:
            self.tables[what] = CleaningReport(what)
        return self.tables[what]

    @property
    def dropped_rows(self) -> int:
        return sum(t.dropped_rows for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source,
                "tables": {k: v.to_dict() for k, v in self.tables.items()}}

    def format(self, max_examples: int = 3) -> str:
        head = f"loaded {self.source}" if self.source else "loaded"
        return "\n".join([head, *(t.format(max_examples) for t in self.tables.values())])
