"""The ``qlearning`` plugin: a reranker that orders lists for long-term reward.

At fit it builds the shop simulator from the shop's own logs
(:meth:`recsdk.simulate.ShopSimulator.from_dataset`, seeded with the run's seed) and
trains a Q policy against it (:func:`.policy.train_policy`): a table over compact
state and action classes (``model = "tabular"``, :mod:`.tabular`, Watkins & Dayan
1992) or a deep Q-network over a learned state (``model = "dqn"``, :mod:`.model`,
Mnih et al. 2015; needs torch). The reward is the simulator's: clicks plus purchases
(worth their price) over every visit until the user churns, discounted by ``gamma``,
so an item that sells, or a list that brings the user back, counts beyond the click.

Serving is ``recsdk_rerank``: the upstream plugins retrieve and score as usual; the
first ``pool`` items of the ranking it receives are reordered by ``Q(s, a)``, ``s``
the request's state (history, session, the ``interest`` plugin's affinities) and
``a`` each item (:mod:`.features`); ``blend`` mixes the upstream score back in.
Items the simulator did not know (new since training) keep their positions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from recsdk_plugins.deep_training import TrainingReport, require_torch, torch_threads
from recsdk_plugins.qlearning.features import ShopEncoder
from recsdk_plugins.qlearning.params import DEFAULT_LEARNING_RATE, QLearningParams
from recsdk_plugins.qlearning.policy import (
    QPolicy,
    TabularLearner,
    TrainingLog,
    order_pool,
    train_policy,
)
from recsdk_plugins.qlearning.tabular import QTable

from recsdk import Plugin, hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.types import PluginContext, Ranking, RecommendationRequest

log = logging.getLogger(__name__)

NAME = "qlearning"
WEIGHTS_ARTIFACT = "qnetwork.pt"


class QLearning(Plugin):
    """Reorders the upstream ranking by a Q policy trained in the shop simulator."""

    Params = QLearningParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._device = "cpu"
        self._seed = 0

    # ---- parameters ------------------------------------------------------------------

    @property
    def model(self) -> str:
        return str(self.params.get("model", "tabular"))

    @property
    def learning_rate(self) -> float:
        rate = self.params.get("learning_rate")
        return float(DEFAULT_LEARNING_RATE[self.model] if rate is None else rate)

    def simulator_params(self) -> Any:
        """The ``simulator`` table as SimulatorParams, or an error naming the field."""
        from recsdk.simulate import SimulatorParams

        given = dict(self.params.get("simulator") or {})
        try:
            return SimulatorParams(**given)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"plugins.{NAME}: invalid simulator parameters "
                                     f"{given}: {exc}") from exc

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        if self.model == "dqn":
            require_torch(NAME)
        self.simulator_params()
        self._device = context.device
        self._seed = int(context.seed)

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        from recsdk.simulate import ShopSimulator

        self.recsdk_configure(context)
        if dataset.n_users == 0 or dataset.n_items == 0:
            raise ConfigurationError(f"plugins.{NAME}: no interactions to calibrate the "
                                     "simulator from")
        sim = ShopSimulator.from_dataset(dataset, self.simulator_params(), seed=self._seed)
        encoder = ShopEncoder.from_simulator(sim, dataset.catalog)
        weights = np.asarray(sim.params.examination(), dtype=np.float64)
        p = self.params
        with torch_threads(p.get("num_threads") or None if self.model == "dqn" else None):
            learner = self._new_learner(encoder, weights, sim)
            policy = QPolicy(encoder, learner, pool=int(p.get("pool", 100)))
            training = train_policy(
                sim, policy, int(p.get("episodes", 3000)), self._seed,
                (float(p.get("epsilon_start", 1.0)), float(p.get("epsilon_end", 0.05)),
                 float(p.get("epsilon_decay", 0.5))), bool(p.get("progress", False)), NAME)
        self.encoder_, self.learner_, self.weights_ = encoder, learner, weights
        self.report_ = training_report(training, self._device if self.model == "dqn"
                                       else "cpu")
        log.info("plugins.%s: %s model trained on %d simulated users (%d lists) in %.1f s; "
                 "reward per user %.2f in the first and %.2f in the last twentieth",
                 NAME, self.model, training.episodes, training.steps, training.seconds,
                 training.curve[0] if training.curve else float("nan"),
                 training.curve[-1] if training.curve else float("nan"))

    def _new_learner(self, encoder: ShopEncoder, weights: np.ndarray, sim: Any) -> Any:
        p = self.params
        gamma = float(p.get("gamma", 0.9))
        if self.model == "tabular":
            return TabularLearner.new(encoder, weights, gamma, self.learning_rate,
                                      float(p.get("shrinkage", 20.0)))
        from recsdk_plugins.deep_training import seed_everything
        from recsdk_plugins.qlearning.model import DQNLearner

        seed_everything(self._seed)
        return DQNLearner(
            encoder, weights, gamma=gamma, learning_rate=self.learning_rate,
            seed=self._seed, device=self._device, embedding=int(p.get("embedding", 16)),
            hidden=int(p.get("hidden", 64)), replay_size=int(p.get("replay_size", 10_000)),
            batch_size=int(p.get("batch_size", 64)), train_every=int(p.get("train_every", 2)),
            target_update=int(p.get("target_update", 200)), reward_scale=reward_scale(sim))

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "learner_"):
            return None
        state = {f"encoder_{k}": v for k, v in self.encoder_.state().items()}
        state["weights"] = self.weights_
        if self.model == "tabular":
            state.update({f"table_{k}": v for k, v in self.learner_.table.state().items()})
        else:
            artifacts.save_torch(WEIGHTS_ARTIFACT, self.learner_.state_dict())
            state["reward_scale"] = np.array([self.learner_.reward_scale])
        return state

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          artifacts: ArtifactReader) -> None:
        encoder = ShopEncoder.from_state(
            {k[len("encoder_"):]: np.asarray(v) for k, v in state.items()
             if k.startswith("encoder_")})
        weights = np.asarray(state["weights"], dtype=np.float64)
        if self.model == "tabular":
            if "table_q" not in state:
                raise ConfigurationError(f"plugins.{NAME}: the stored run holds no Q table; "
                                         "it was trained with model = \"dqn\"")
            table = QTable.from_state({k[len("table_"):]: np.asarray(v) for k, v
                                       in state.items() if k.startswith("table_")})
            learner: Any = TabularLearner(encoder, table)
        else:
            if "reward_scale" not in state:
                raise ConfigurationError(f"plugins.{NAME}: the stored run holds no Q "
                                         "network; it was trained with model = \"tabular\"")
            from recsdk_plugins.qlearning.model import DQNLearner

            p = self.params
            learner = DQNLearner(
                encoder, weights, gamma=float(p.get("gamma", 0.9)),
                learning_rate=self.learning_rate, seed=self._seed, device="cpu",
                embedding=int(p.get("embedding", 16)), hidden=int(p.get("hidden", 64)),
                replay_size=1, batch_size=1,
                reward_scale=float(np.asarray(state["reward_scale"])[0]))
            learner.load(artifacts.load_torch(WEIGHTS_ARTIFACT))
        self.encoder_, self.learner_, self.weights_ = encoder, learner, weights

    # ---- serving ---------------------------------------------------------------------

    def request_order(self, request: RecommendationRequest, codes: np.ndarray,
                      upstream: np.ndarray) -> np.ndarray:
        """The Q policy's order of items ``codes`` (the encoder's) for the request's
        state: positions into ``codes``."""
        enc = self.encoder_
        interest = request.features.get("interest") or {}
        history = request.history
        state = enc.request_state(history.item_ids, history.types, history.session_ids,
                                  request.session_id, interest.get("category_affinity"))
        return order_pool(self.learner_, enc, state, codes, _minmax(upstream),
                          int(request.k), float(self.params.get("blend", 0.0)))

    @hookimpl
    def recsdk_rerank(self, request: RecommendationRequest,
                      ranking: Ranking) -> Ranking | None:
        """The first ``pool`` items reordered by the Q policy; items the model does not
        know keep their positions, and each position keeps its upstream score."""
        if not hasattr(self, "learner_") or len(ranking) < 2:
            return None
        depth = min(int(self.params.get("pool", 100)), len(ranking))
        head = list(ranking.item_ids[:depth])
        codes = np.array([self.encoder_.item_index.get(str(i), -1) for i in head],
                         dtype=np.int64)
        known = np.flatnonzero(codes >= 0)
        if len(known) < 2:
            return None
        upstream = np.asarray(ranking.scores[:depth], dtype=np.float64)[known]
        order = self.request_order(request, codes[known], upstream)
        reordered = list(head)
        for slot, pick in zip(known, known[order], strict=True):
            reordered[slot] = head[pick]
        return Ranking(reordered + list(ranking.item_ids[depth:]), list(ranking.scores))


def _minmax(values: np.ndarray) -> np.ndarray:
    """Finite values scaled to [0, 1]; NaN and infinities count as 0."""
    finite = np.where(np.isfinite(values), values, np.nan)
    if np.isnan(finite).all():
        return np.zeros(len(values))
    lo, hi = np.nanmin(finite), np.nanmax(finite)
    scaled = (finite - lo) / (hi - lo) if hi > lo else np.zeros(len(values))
    return np.nan_to_num(scaled, nan=0.0)


def reward_scale(sim: Any) -> float:
    """A typical reward size: the median price when purchases pay their price (else
    the purchase value), so the network learns numbers near one."""
    value = sim.params.purchase_value
    if value == "price":
        prices = np.asarray(sim.item_price, dtype=np.float64)
        prices = prices[np.isfinite(prices) & (prices > 0)]
        return float(np.median(prices)) if len(prices) else 1.0
    return max(abs(float(value)), float(sim.params.click_value), 1e-6)


def training_report(training: TrainingLog, device: str) -> TrainingReport:
    """The training as the deep plugins report it: one "epoch" per twentieth of the
    episodes, its score the mean reward per simulated user."""
    report = TrainingReport(name=NAME, device=device, epochs=len(training.curve))
    report.history = [(i + 1, r) for i, r in enumerate(training.curve)]
    per_block = training.seconds / max(len(training.curve), 1)
    report.epoch_seconds = [per_block] * len(training.curve)
    if training.curve:
        best = int(np.argmax(training.curve))
        report.best_epoch, report.best_score = best + 1, float(training.curve[best])
    return report
