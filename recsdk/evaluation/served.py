"""Offline lists from the served pipeline: ``RecSDK.recommend()`` itself, not a copy of it.

The per-plugin loop (:mod:`.offline`) measures one algorithm; what a shop shows is
the configured pipeline: retrieval, the weighted blend, the rerank chain with its
filters, the fallback and the placement's overrides. :class:`ServedPipeline` builds a
:class:`~recsdk.RecSDK` from the configuration on a throwaway SQLite database in a
temporary directory (no Redis, no cached results, no model refresh), writes the
catalogue and the training interactions into it, so that plugins reading the
catalogue or a user's history see them as in production, trains a run in-process
(``fit_dataset(save=False)``) and asks ``recommend()`` for every user, with that user's
training items excluded.

Plugin time budgets are lifted by default: on a busy machine a timeout would drop a
plugin from some lists and make the score depend on load. Lists that still come back
degraded (a plugin raised) are counted, with their failures.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsdk.config import Settings, load_settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError, ValidationFailed
from recsdk.evaluation.catalogue import EvaluationCatalogue
from recsdk.evaluation.comparison import RunResult, evaluate_recommendations, held_out_truth
from recsdk.evaluation.files import fail, read_frame
from recsdk.evaluation.offline import IMPLICIT_EVENT

#: The plugin budget when timeouts are lifted: an hour per call.
LIFTED_TIMEOUT_MS = 3_600_000.0
DEFAULT_PLACEMENT = "default"


def offline_settings(config: str | os.PathLike[str] | Mapping[str, Any] | None, directory: Path,
                     *, timeouts: bool = False,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration (file or dict, with ``RECSDK_*`` variables applied) with its
    storage replaced by a SQLite file in ``directory`` and every cache and refresh off;
    without ``timeouts`` the plugins' time budgets are lifted (see the module)."""
    raw = dict(load_settings(config, environ=environ).raw)
    raw["database_url"] = f"sqlite:///{directory / 'evaluation.db'}"
    raw["redis_url"] = None
    raw["cache"] = {**raw.get("cache", {}), "result_ttl_s": 0, "degraded_ttl_s": 0}
    raw["models"] = {**raw.get("models", {}), "model_refresh_s": 0,
                     "artifact_dir": str(directory / "artifacts")}
    if not timeouts:
        raw["pipeline"] = {**raw.get("pipeline", {}), "timeout_ms": LIFTED_TIMEOUT_MS}
        if raw.get("plugins"):
            raw["plugins"] = {name: {k: v for k, v in table.items() if k != "timeout_ms"}
                              for name, table in raw["plugins"].items()}
    return raw


def check_placement(settings: Settings, placement: str) -> None:
    """A placement must be known (configured or built in), as the API requires."""
    try:
        settings.check_placement(placement)
    except ValidationFailed as exc:
        raise ConfigurationError(" ".join(exc.messages["placement"])) from exc


def train_events(train: pd.DataFrame) -> pd.DataFrame:
    """The training interactions as store events: type ``interaction`` (unless the file
    has a ``type`` column), the rating as value, UTC timestamps (file order when the
    file has none, as :meth:`InteractionDataset.from_frame` would number them; an
    empty one among others is an error, as events are stored with their time)."""
    if "timestamp" in train:
        seconds = train["timestamp"].to_numpy(dtype=float)
        empty = np.flatnonzero(np.isnan(seconds))
        if len(empty):
            raise fail(train, "train", "timestamp", empty, "empty timestamp: the served "
                       "pipeline stores every interaction with its time")
    else:
        seconds = np.arange(len(train), dtype=float)
    return pd.DataFrame({
        "user_id": train["user"].to_numpy(dtype=object),
        "item_id": train["item"].to_numpy(dtype=object),
        "type": train["type"].to_numpy(dtype=object) if "type" in train else IMPLICIT_EVENT,
        "timestamp": pd.to_datetime(seconds, unit="s", utc=True),
        "value": train["rating"].to_numpy(dtype=float) if "rating" in train else np.nan,
    })


def read_candidates(path: str | Path) -> list[str]:
    """Item ids from a file with an ``item`` (or ``item_id``) column, once each, in order."""
    frame = read_frame(path)
    source = str(path)
    if "item" not in frame.columns:
        raise ValidationFailed({"columns": [f"missing column 'item'; the header names "
                                            f"{list(frame.columns)}"]}, source)
    items = frame["item"].dropna()
    if len(items) == 0:
        raise ValidationFailed({"rows": ["no candidate items (the file has a header only)"]},
                               source)
    return list(dict.fromkeys(items.astype(str)))


@dataclass(frozen=True)
class ServedLists:
    """Every user's list from ``recommend()``: ``user,item,rank,score`` rows, best first,
    how many lists were degraded and the failures behind them (message: lists)."""

    recommendations: pd.DataFrame
    users: int
    degraded: int
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def degraded_summary(self, shown: int = 3) -> str | None:
        """One line on degraded lists and their commonest failures; None when none."""
        if not self.degraded:
            return None
        causes = "; ".join(f"{m} ({n})" for m, n in self.failures.most_common(shown))
        return f"{self.degraded} of {self.users} lists were degraded: {causes}"


class ServedPipeline:
    """A throwaway :class:`~recsdk.RecSDK`, trained on a training frame, that serves it.

    ``config``: a TOML path, a settings dict or None (defaults and ``RECSDK_*``);
    ``catalogue``: items to write to its store first; ``history``: also store the
    training interactions, so plugins that read a user's recent history see them;
    ``timeouts``: keep the configured plugin time budgets.
    """

    def __init__(self, config: str | os.PathLike[str] | Mapping[str, Any] | None,
                 train: pd.DataFrame, *, catalogue: EvaluationCatalogue | None = None,
                 history: bool = True, timeouts: bool = False,
                 plugins: Mapping[str, type] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        from recsdk.sdk import RecSDK  # the SDK imports every layer: only when used

        self._directory = tempfile.TemporaryDirectory(prefix="recsdk-evaluation-")
        #: seconds spent per step: sdk (settings, schema), catalogue, history, fit
        self.timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            self.timings[step] = now - clock
            clock = now

        try:
            settings = offline_settings(config, Path(self._directory.name),
                                        timeouts=timeouts, environ=environ)
            self.sdk = RecSDK(settings, environ={}, plugins=plugins, serve_models=False)
        except BaseException:
            self._directory.cleanup()
            raise
        try:
            lap("sdk")
            if catalogue is not None:
                catalogue.data.write_to(self.sdk, validate=True)
            lap("catalogue")
            events = train_events(train)
            if history:
                self.sdk.store.copy_events(events)
            lap("history")
            dataset = InteractionDataset.from_frame(events, self.sdk.catalog,
                                                    self.sdk.settings.event_weights)
            self.sdk.fit_dataset(dataset, save=False)
            lap("fit")
        except BaseException:
            self.close()
            raise
        self.seen: dict[str, list[str]] = {
            str(u): list(dict.fromkeys(items))
            for u, items in train.groupby("user", sort=False)["item"]}
        self.user_ids = [str(u) for u in dataset.user_ids]
        #: training items the catalogue lacks: with a catalogue, only its items are
        #: candidates (as in production), so these are never recommended
        self.uncatalogued: list[str] = [] if catalogue is None else sorted(
            set(map(str, train["item"].unique())) - set(catalogue.item_ids))

    def close(self) -> None:
        self.sdk.close()
        self._directory.cleanup()

    def __enter__(self) -> ServedPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recommend(self, user_ids: Sequence[str], k: int, *,
                  placement: str = DEFAULT_PLACEMENT, candidates: Sequence[str] | None = None,
                  progress: bool = False) -> ServedLists:
        """``recommend()`` for each user, their training items excluded; ``candidates``:
        rank only these items."""
        check_placement(self.sdk.settings, placement)
        allowed = None if candidates is None else list(candidates)
        users: list[str] = []
        items: list[str] = []
        ranks: list[int] = []
        scores: list[float] = []
        failures: Counter[str] = Counter()
        degraded = 0
        start = time.perf_counter()
        for user in tqdm(user_ids, desc="recommending", unit="user", leave=False,
                         disable=None if progress else True):
            result = self.sdk.recommend(user, k=k, placement=placement, log_request=False,
                                        exclude=self.seen.get(user, ()), candidates=allowed)
            if result.degraded:
                degraded += 1
                failures.update(result.failures)
            for entry in result.items:
                users.append(user)
                items.append(entry.item_id)
                ranks.append(entry.position)
                scores.append(entry.score)
        frame = pd.DataFrame({"user": pd.Series(users, dtype=object),
                              "item": pd.Series(items, dtype=object),
                              "rank": np.asarray(ranks, dtype=np.int64),
                              "score": np.asarray(scores, dtype=float)})
        return ServedLists(frame, len(user_ids), degraded, failures,
                           time.perf_counter() - start)


@dataclass(frozen=True)
class ServedEvaluation:
    """A scored served run: the metrics row (``fit_seconds``: everything before the
    first request), the lists behind it, how many test pairs were left out because
    their item is not a candidate, and where the time went."""

    result: RunResult
    lists: ServedLists
    outside_candidates: int = 0
    #: training items that the catalogue lacks (see :attr:`ServedPipeline.uncatalogued`)
    uncatalogued: Sequence[str] = ()
    #: seconds per step (see :attr:`ServedPipeline.timings`) and ``recommend``
    timings: Mapping[str, float] = field(default_factory=dict)


def restrict_to_candidates(truth: pd.DataFrame, train: pd.DataFrame,
                           candidates: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Test pairs whose item is a candidate (no other could ever be listed), and per
    user the candidates that are neither relevant nor trained: AUC's negatives."""
    allowed = set(candidates)
    kept = truth[truth["item"].isin(allowed)].reset_index(drop=True)
    if len(kept) == 0:
        raise ValidationFailed({"rows": ["no test pair names a candidate item: nothing to "
                                         "score against"]}, "candidates")
    relevant = kept.groupby("user").size()
    trained = (train.loc[train["item"].isin(allowed), ["user", "item"]].drop_duplicates()
               .groupby("user").size())
    negatives = {str(u): len(allowed) - int(n) - int(trained.get(u, 0))
                 for u, n in relevant.items()}
    return kept, negatives


def evaluate_served(
    config: str | os.PathLike[str] | Mapping[str, Any] | None,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    ks: Sequence[int] = (),
    *,
    label: str = "pipeline",
    placement: str = DEFAULT_PLACEMENT,
    catalogue: EvaluationCatalogue | None = None,
    candidates: Sequence[str] | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    history: bool = True,
    timeouts: bool = False,
    progress: bool = False,
    plugins: Mapping[str, type] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServedEvaluation:
    """Train the configured pipeline on ``train``, serve every test user and score the
    lists against the test pairs that are not training pairs, as
    :func:`~recsdk.evaluation.comparison.evaluate_plugin` does for one plugin. With
    ``candidates`` only test pairs of candidate items count (see
    :func:`restrict_to_candidates`)."""
    check_placement(load_settings(config, environ=environ), placement)
    truth = held_out_truth(train, test)
    n_negative = None
    outside = 0
    if candidates is not None:
        restricted, n_negative = restrict_to_candidates(truth, train, candidates)
        outside = len(truth) - len(restricted)
        truth = restricted
    users = sorted(truth["user"].unique())
    with ServedPipeline(config, train, catalogue=catalogue, history=history,
                        timeouts=timeouts, plugins=plugins, environ=environ) as served:
        lists = served.recommend(users, max([k, *ks]), placement=placement,
                                 candidates=candidates, progress=progress)
        timings = {**served.timings, "recommend": lists.seconds}
        uncatalogued = served.uncatalogued
    result = evaluate_recommendations(
        label, lists.recommendations, truth, k=k, ks=ks, train=train,
        items=catalogue.item_categories if catalogue is not None else None,
        embeddings=embeddings, n_negative=n_negative)
    top = lists.recommendations
    result = replace(result, plugin="pipeline",
                     fit_seconds=sum(v for n, v in timings.items() if n != "recommend"),
                     score_seconds=lists.seconds,
                     recommendations=top[top["rank"] <= k].reset_index(drop=True))
    return ServedEvaluation(result, lists, outside, uncatalogued, timings)
