"""Settings: a TOML file, ``RECSDK_*`` environment variables or a dict in code.

Precedence, lowest first: built-in defaults, the TOML file (``RECSDK_CONFIG`` or an
explicit path), the dict passed in code, then environment variables. Every section is
validated by a marshmallow schema, so a typo stops startup with a message that names
the key and what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from recsdk.errors import ConfigurationError, ValidationFailed

DEFAULT_DATABASE_URL = "sqlite:///recsdk.db"

#: Placements every shop has without configuring them: ``recommend``'s default and
#: ``similar_items``'s, plus ``home``, the storefront's front page.
BUILTIN_PLACEMENTS = ("default", "home", "similar", "cart")

#: Per-plugin keys the host reads itself; every other key goes to the plugin.
HOST_PLUGIN_KEYS = ("plugin", "enabled", "weight", "timeout_ms", "quota", "max_concurrency",
                    "seed")

#: Upper bound of a plugin's ``max_concurrency`` (threads it may hold at once).
MAX_PLUGIN_CONCURRENCY = 1024

#: ``[pipeline]`` keys that say how plugins are run, not what they recommend: left out
#: of the configuration hash, so tuning them does not invalidate cached lists or runs.
ISOLATION_KEYS = ("breaker_failures", "breaker_reset_s", "fallback_workers")

#: Shortest ``api.beacon_secret`` accepted: an HMAC key needs entropy to be one.
MIN_SECRET_LENGTH = 32

#: Implicit-feedback strength of each event type (a return counts against).
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "remove_from_cart": -1.0,
    "purchase": 8.0,
    "rating": 5.0,
    "review": 5.0,
    "return": -8.0,
}


class PipelineSchema(Schema):
    class Meta:
        unknown = RAISE

    k = fields.Integer(load_default=10, validate=validate.Range(1, 1000))
    timeout_ms = fields.Float(load_default=250.0, validate=validate.Range(min=1))
    fallback = fields.String(load_default="popularity")
    # each retriever's default quota; 200 was chosen with pool_size on a validation split
    # (docs/benchmarks.md, "Latency independent of catalogue size"): 50 to 400 served
    # lists as good as scoring every item, and an HNSW search costs its quota
    candidate_limit = fields.Integer(load_default=200, validate=validate.Range(min=1))
    # candidate retrieval (docs/plugins.md, "Candidate retrieval by default"): auto turns
    # the built-in pool retrievers on from retrieval_min_items catalogue items, so that
    # scorers see a bounded candidate set; on: always; off: every item is scored
    retrieval = fields.String(load_default="auto",
                              validate=validate.OneOf(("auto", "on", "off")))
    retrieval_min_items = fields.Integer(load_default=100_000,
                                         validate=validate.Range(1, 1_000_000_000))
    # most items each pool retriever (popularity, trending, category_popularity,
    # cooccurrence) answers; a plugin's quota can lower it
    pool_size = fields.Integer(load_default=200, validate=validate.Range(1, 100_000))
    # candidates a final ranker (recsdk_rank) reorders: the blend's best rank_depth
    rank_depth = fields.Integer(load_default=100, validate=validate.Range(1, 100_000))
    # each plugin's default max_concurrency (calls of it running at once)
    max_workers = fields.Integer(load_default=16, validate=validate.Range(1, 256))
    breaker_failures = fields.Integer(load_default=5, validate=validate.Range(1, 1000))
    breaker_reset_s = fields.Float(load_default=30.0, validate=validate.Range(0.01, 86_400))
    fallback_workers = fields.Integer(load_default=16, validate=validate.Range(1, 256))


class ApiSchema(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(load_default=None, allow_none=True)
    max_batch = fields.Integer(load_default=10_000, validate=validate.Range(1, 1_000_000))
    max_content_length = fields.Integer(
        load_default=16 * 1024 * 1024, validate=validate.Range(1024, 1024**3)
    )
    # feedback capture from pages (docs/feedback_capture.md): the key that signs list
    # and visitor tokens; unset, each process draws its own (tokens then die with it)
    beacon_secret = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=MIN_SECRET_LENGTH))
    beacon_token_ttl_s = fields.Float(load_default=86_400.0,
                                      validate=validate.Range(60, 30 * 86_400))
    beacon_replay_ttl_s = fields.Float(load_default=86_400.0,
                                       validate=validate.Range(1, 30 * 86_400))
    beacon_max_events = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    beacon_max_bytes = fields.Integer(load_default=64 * 1024,
                                      validate=validate.Range(1024, 1024 * 1024))
    beacon_rate_per_s = fields.Float(load_default=2.0, validate=validate.Range(0.001, 10_000))
    beacon_burst = fields.Integer(load_default=30, validate=validate.Range(1, 100_000))
    widget_rate_per_s = fields.Float(load_default=1.0, validate=validate.Range(0.001, 10_000))
    widget_burst = fields.Integer(load_default=20, validate=validate.Range(1, 100_000))
    widget_max_k = fields.Integer(load_default=50, validate=validate.Range(1, 1000))
    visitor_ttl_s = fields.Float(load_default=30 * 86_400.0,
                                 validate=validate.Range(60, 400 * 86_400))
    visitor_cookie = fields.String(load_default="recsdk_visitor", validate=validate.Regexp(
        r"^[A-Za-z0-9_-]{1,64}$", error="a cookie name: 1 to 64 letters, digits, _ or -"))
    redirect_hosts = fields.List(fields.String(validate=validate.Regexp(
        r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$", error="a host name, optionally with :port")),
        load_default=list)


class CacheSchema(Schema):
    class Meta:
        unknown = RAISE

    result_ttl_s = fields.Float(load_default=60.0, validate=validate.Range(min=0))
    recent_events = fields.Integer(load_default=200, validate=validate.Range(1, 100_000))
    max_entries = fields.Integer(load_default=100_000, validate=validate.Range(min=1))
    socket_timeout_s = fields.Float(load_default=0.25, validate=validate.Range(min=0.001))
    catalog_refresh_s = fields.Float(load_default=10.0, validate=validate.Range(min=0))
    degraded_ttl_s = fields.Float(load_default=5.0, validate=validate.Range(min=0))


class ModelsSchema(Schema):
    """The model registry and lifecycle: where artifacts live, refresh and retention."""

    class Meta:
        unknown = RAISE

    artifact_dir = fields.String(load_default=None, allow_none=True)
    model_refresh_s = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    keep_runs = fields.Integer(load_default=5, validate=validate.Range(min=1))
    inline_max_bytes = fields.Integer(load_default=8 * 1024 * 1024,
                                      validate=validate.Range(min=0))
    train_interval_s = fields.Float(load_default=86_400.0, validate=validate.Range(min=1))
    train_timeout_s = fields.Float(load_default=3_600.0, validate=validate.Range(min=1))
    # each run's offline metrics on the latest events (recsdk.evaluation.holdout)
    offline_eval = fields.Boolean(load_default=False)
    offline_eval_test_ratio = fields.Float(load_default=0.1,
                                           validate=validate.Range(0.01, 0.5))
    offline_eval_k = fields.Integer(load_default=10, validate=validate.Range(1, 1000))
    offline_eval_max_users = fields.Integer(load_default=1000,
                                            validate=validate.Range(min=1))


class PlacementSchema(Schema):
    """Per-placement overrides: list length and scoring plugins' weights."""

    class Meta:
        unknown = RAISE

    k = fields.Integer(validate=validate.Range(1, 1000))
    weights = fields.Dict(keys=fields.String(), values=fields.Float(validate=validate.Range(
        min=0)), load_default=dict)


class RetentionSchema(Schema):
    """How long served lists (requests and their impressions) are kept."""

    class Meta:
        unknown = RAISE

    requests_days = fields.Integer(load_default=30, validate=validate.Range(1, 36_500))
    prune_batch = fields.Integer(load_default=1000, validate=validate.Range(1, 100_000))


class SettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    database_url = fields.String(load_default=DEFAULT_DATABASE_URL)
    redis_url = fields.String(load_default=None, allow_none=True)
    seed = fields.Integer(load_default=42)
    device = fields.String(load_default="auto")
    event_weights = fields.Dict(
        keys=fields.String(), values=fields.Float(), load_default=dict
    )
    pipeline = fields.Nested(PipelineSchema, load_default=dict)
    api = fields.Nested(ApiSchema, load_default=dict)
    cache = fields.Nested(CacheSchema, load_default=dict)
    models = fields.Nested(ModelsSchema, load_default=dict)
    plugins = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=None)
    placements = fields.Dict(keys=fields.String(validate=validate.Length(1, 64)),
                             values=fields.Nested(PlacementSchema), load_default=dict)
    retention = fields.Nested(RetentionSchema, load_default=dict)
    # validated per experiment by recsdk.experiments.config.load_experiments
    experiments = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)


@dataclass(frozen=True)
class PluginSettings:
    """One enabled plugin: its configured name, entry point, weight and parameters."""

    name: str
    plugin: str
    weight: float = 1.0
    timeout_ms: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: candidates this plugin may retrieve per request (None: pipeline.candidate_limit)
    quota: int | None = None
    max_concurrency: int | None = None
    #: this plugin's own seed instead of the run's (None: the run's ``seed``), so the
    #: same model can run twice under two names with two seeds (an ensemble)
    seed: int | None = None


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`load_settings`."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    seed: int = 42
    device: str = "auto"
    event_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS)
    )
    pipeline: Mapping[str, Any] = field(default_factory=lambda: PipelineSchema().load({}))
    api: Mapping[str, Any] = field(default_factory=lambda: ApiSchema().load({}))
    cache: Mapping[str, Any] = field(default_factory=lambda: CacheSchema().load({}))
    models: Mapping[str, Any] = field(default_factory=lambda: ModelsSchema().load({}))
    plugins: tuple[PluginSettings, ...] = ()
    placements: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retention: Mapping[str, Any] = field(default_factory=lambda: RetentionSchema().load({}))
    #: ``[experiments.NAME]`` tables (recsdk.experiments.config.ExperimentSettings)
    experiments: tuple[Any, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def plugin(self, name: str) -> PluginSettings:
        for p in self.plugins:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def known_placements(self) -> tuple[str, ...]:
        """The built-in placements and those under ``[placements.*]``, sorted."""
        return tuple(sorted({*BUILTIN_PLACEMENTS, *self.placements}))

    def check_placement(self, name: str) -> None:
        """Refuse a placement that is not configured.

        Placements name served-list logs and metric labels, so an open set would let
        anonymous traffic grow both without bound.
        """
        known = self.known_placements
        if name not in known:
            raise ValidationFailed({"placement": [
                f"Unknown placement {name!r}; known placements: {', '.join(known)} "
                "(add one under [placements.NAME])."
            ]}, "request")

    @functools.cached_property
    def config_hash(self) -> str:
        """A short stable digest of the settings that shape recommendations."""
        shaping = {
            "pipeline": {k: v for k, v in self.pipeline.items() if k not in ISOLATION_KEYS},
            "plugins": [  # a plugin's own seed only where set, so older hashes stay the same
                [p.name, p.plugin, p.weight, dict(p.params), p.quota]
                + ([] if p.seed is None else [p.seed]) for p in self.plugins
            ],
            "placements": self.placements,
            "event_weights": dict(self.event_weights),
        }
        if self.experiments:  # absent when none, so that older hashes stay the same
            from recsdk.experiments.config import experiments_hash_part

            shaping["experiments"] = experiments_hash_part(self.experiments)
        blob = json.dumps(shaping, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


DEFAULT_PLUGINS: dict[str, dict[str, Any]] = {"popularity": {}, "filters": {}}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


#: The ``RECSDK_*`` variables :func:`load_settings` reads; the Flask extension
#: (:mod:`recsdk.flask_ext`) takes the same names from ``app.config``.
ENVIRONMENT_VARIABLES = ("RECSDK_CONFIG", "RECSDK_DATABASE_URL", "RECSDK_REDIS_URL",
                         "RECSDK_SEED", "RECSDK_API_KEY", "RECSDK_PLUGINS")


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read the ``RECSDK_*`` variables that override the file and the dict."""
    out: dict[str, Any] = {}
    if url := environ.get("RECSDK_DATABASE_URL"):
        out["database_url"] = url
    if "RECSDK_REDIS_URL" in environ:
        out["redis_url"] = environ["RECSDK_REDIS_URL"] or None
    if seed := environ.get("RECSDK_SEED"):
        try:
            out["seed"] = int(seed)
        except ValueError as exc:
            raise ConfigurationError(f"RECSDK_SEED must be an integer, got {seed!r}") from exc
    if key := environ.get("RECSDK_API_KEY"):
        out["api"] = {"api_key": key}
    if secret := environ.get("RECSDK_API_BEACON_SECRET"):
        out.setdefault("api", {})["beacon_secret"] = secret
    if names := environ.get("RECSDK_PLUGINS"):
        out["plugins"] = {n.strip(): {} for n in names.split(",") if n.strip()}
    return out


def _split_plugins(raw: Mapping[str, Mapping[str, Any]] | None) -> tuple[PluginSettings, ...]:
    plugins = dict(raw) if raw is not None else dict(DEFAULT_PLUGINS)
    # The availability filters are the default rerank chain: on unless switched off.
    plugins.setdefault("filters", {})
    out = []
    for name, table in plugins.items():
        table = dict(table)
        if not table.pop("enabled", True):
            continue
        weight = table.pop("weight", 1.0)
        timeout_ms = table.pop("timeout_ms", None)
        quota = table.pop("quota", None)
        try:
            weight = float(weight)
            timeout_ms = None if timeout_ms is None else float(timeout_ms)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"plugins.{name}: weight and timeout_ms must be numbers ({exc})"
            ) from exc
        if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int)
                                  or quota < 1):
            raise ConfigurationError(
                f"plugins.{name}.quota must be a positive integer (candidates per "
                f"request), got {quota!r}")
        max_concurrency = table.pop("max_concurrency", None)
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
            or not 1 <= max_concurrency <= MAX_PLUGIN_CONCURRENCY
        ):
            raise ConfigurationError(
                f"plugins.{name}: max_concurrency must be an integer from 1 to "
                f"{MAX_PLUGIN_CONCURRENCY}, got {max_concurrency!r}"
            )
        seed = table.pop("seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise ConfigurationError(
                f"plugins.{name}.seed must be a non-negative integer (this plugin's own "
                f"seed instead of the run's), got {seed!r}")
        entry = str(table.pop("plugin", name))
        out.append(PluginSettings(name, entry, weight, timeout_ms, table, quota=quota,
                                  max_concurrency=max_concurrency, seed=seed))
    return tuple(out)


def _check_fallback_capacity(plugins: tuple[PluginSettings, ...], fallback: str) -> None:
    """The fallback's capacity is ``[pipeline] fallback_workers``: one knob, not two."""
    for p in plugins:
        if p.name == fallback and p.max_concurrency is not None:
            raise ConfigurationError(
                f"plugins.{p.name}.max_concurrency: {p.name!r} is the fallback, whose "
                f"reserved capacity is set by pipeline.fallback_workers; remove "
                f"max_concurrency there"
            )


def load_settings(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build validated settings.

    ``config`` is a dict, or a path to a TOML file; when it is None the file named by
    ``RECSDK_CONFIG`` is read, if set. Environment variables win over both.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    path = config if isinstance(config, str | os.PathLike) else environ.get("RECSDK_CONFIG")
    if path:
        merged = _deep_merge(merged, _read_toml(Path(path)))
    if isinstance(config, Mapping):
        merged = _deep_merge(merged, config)
    env = _from_environment(environ)
    if "plugins" in env:  # RECSDK_PLUGINS replaces the set, keeping file parameters
        file_plugins = merged.get("plugins") or {}
        env["plugins"] = {n: dict(file_plugins.get(n, {})) for n in env["plugins"]}
        merged["plugins"] = env.pop("plugins")
    merged = _deep_merge(merged, env)
    for section in ("pipeline", "api", "cache", "models", "retention"):  # nested defaults
        merged.setdefault(section, {})
    try:
        data = SettingsSchema().load(merged)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {_flatten(exc.messages)}") from exc
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    weights.update(data["event_weights"])
    plugins = _split_plugins(data["plugins"])
    _check_fallback_capacity(plugins, data["pipeline"]["fallback"])
    from recsdk.experiments.config import load_experiments

    experiments = load_experiments(
        data["experiments"],
        known_placements={*BUILTIN_PLACEMENTS, *data["placements"]},
        top_plugins=plugins, fallback=data["pipeline"]["fallback"])
    return Settings(
        database_url=data["database_url"],
        redis_url=data["redis_url"],
        seed=data["seed"],
        device=data["device"],
        event_weights=weights,
        pipeline=data["pipeline"],
        api=data["api"],
        cache=data["cache"],
        models=data["models"],
        plugins=plugins,
        placements=data["placements"],
        retention=data["retention"],
        experiments=experiments,
        raw=merged,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from exc


def _flatten(messages: Any, prefix: str = "") -> str:
    """Turn marshmallow's nested messages into ``a.b: message`` lines."""
    if isinstance(messages, Mapping):
        parts = [_flatten(v, f"{prefix}{k}.") for k, v in messages.items()]
        return "; ".join(parts)
    if isinstance(messages, list):
        return f"{prefix.rstrip('.')}: {' '.join(map(str, messages))}"
    return f"{prefix.rstrip('.')}: {messages}"
