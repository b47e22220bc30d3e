"""``[experiments.NAME]``: A/B tests declared in the settings, validated at startup.

An experiment covers one or more placements and splits its units (users, or sessions
of anonymous visitors) between variants, each a pipeline configuration: which plugins,
their weights and parameters, the fallback. Everything that decides who gets which
variant (salt, shares, ramp history, window, targeting, holdout, layer) is declared
here, so every serving process, and every restart, assigns the same way.

Layers: experiments in one layer exclude each other. Each takes a fixed slice of the
layer's own hash space (``layer_range = [lo, hi]``); slices in one layer may not
overlap. A placement serves one pipeline per request, so experiments that share a
placement must be in one layer (disjoint slices); otherwise startup stops, naming both.
A slice is a declared range rather than a share so that adding or removing an
experiment never moves the units of the others.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk.errors import ConfigurationError

#: Tolerance of "the shares add up to 1".
SHARE_TOLERANCE = 1e-9
#: Variant name of the holdout arm (the placement's default pipeline); reserved.
HOLDOUT = "holdout"
UNITS = ("user", "session")
#: Traffic allocation methods: the declared (or ramped) shares, or Thompson sampling.
ALLOCATIONS = ("fixed", "thompson")
#: Unit-level rates a Thompson allocation may optimise (the report's names).
ALLOCATION_METRICS = ("conversion_rate", "click_rate", "add_to_cart_rate")
AUDIENCES = ("all", "new", "returning")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAME_RULE = "1 to 64 letters, digits, '_', '-' or '.'"


class _Aware(fields.AwareDateTime):
    """An ISO datetime; one without a zone is taken as UTC (a config file rarely says)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, datetime):  # TOML reads datetimes itself
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return super()._deserialize(value, attr, data, **kwargs)


class VariantSchema(Schema):
    class Meta:
        unknown = RAISE

    share = fields.Float(required=True, validate=validate.Range(0, 1))
    plugins = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=None)
    fallback = fields.String(load_default=None)


class RampStepSchema(Schema):
    class Meta:
        unknown = RAISE

    at = _Aware(required=True)
    shares = fields.Dict(keys=fields.String(), values=fields.Float(validate=validate.Range(0, 1)),
                         required=True)


class TargetingSchema(Schema):
    class Meta:
        unknown = RAISE

    audience = fields.String(load_default="all", validate=validate.OneOf(AUDIENCES))


class CostsSchema(Schema):
    """What serving the placement costs, for its ROI against the holdout."""

    class Meta:
        unknown = RAISE

    #: gross margin on revenue (incremental revenue times margin is the gain)
    margin = fields.Float(load_default=1.0, validate=validate.Range(0, 1))
    #: compute per 1,000 served lists (the experiment's arms, holdout excluded)
    compute_per_1000_requests = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    #: licences and other fixed costs per day the experiment has run
    licences_per_day = fields.Float(load_default=0.0, validate=validate.Range(min=0))


class AllocationSchema(Schema):
    """How traffic is split: the declared shares, or Thompson sampling between arms."""

    class Meta:
        unknown = RAISE

    method = fields.String(load_default="fixed", validate=validate.OneOf(ALLOCATIONS))
    metric = fields.String(load_default="conversion_rate",
                           validate=validate.OneOf(ALLOCATION_METRICS))
    #: shares are recomputed at most this often (every serving process uses the same)
    every_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0.01))
    #: the declared shares until every arm has this many units
    warmup_units = fields.Integer(load_default=100, validate=validate.Range(min=0))
    #: every arm keeps at least this share (keeps exploring)
    min_share = fields.Float(load_default=0.05, validate=validate.Range(0, 0.5))
    seed = fields.Integer(load_default=0)


class ExperimentSchema(Schema):
    class Meta:
        unknown = RAISE

    placements = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    variants = fields.Dict(keys=fields.String(), values=fields.Nested(VariantSchema),
                           required=True, validate=validate.Length(min=2))
    control = fields.String(load_default=None)
    salt = fields.String(load_default=None, validate=validate.Length(min=1))
    unit = fields.String(load_default="user", validate=validate.OneOf(UNITS))
    start = _Aware(load_default=None)
    stop = _Aware(load_default=None)
    targeting = fields.Nested(TargetingSchema, load_default=dict)
    holdout = fields.Float(load_default=0.0, validate=validate.Range(0, 1, max_inclusive=False))
    layer = fields.String(load_default=None, validate=validate.Length(min=1))
    layer_range = fields.List(fields.Float(validate=validate.Range(0, 1)), load_default=None,
                              validate=validate.Length(equal=2))
    ramp = fields.List(fields.Nested(RampStepSchema), load_default=list)
    costs = fields.Nested(CostsSchema, load_default=dict)
    allocation = fields.Nested(AllocationSchema, load_default=dict)
    #: days before a unit's first exposure whose revenue is CUPED's covariate
    pre_period_days = fields.Float(load_default=14.0, validate=validate.Range(min=0))

    @validates_schema
    def _names(self, data: Mapping[str, Any], **_: Any) -> None:
        bad = [v for v in data.get("variants", {}) if not _NAME.match(v) or v == HOLDOUT]
        if bad:
            raise ValidationError(f"variant names must be {_NAME_RULE}, and not "
                                  f"{HOLDOUT!r} (reserved); got {bad}", "variants")


@dataclass(frozen=True)
class VariantSettings:
    """One arm: its final traffic share and its pipeline (None: the top-level one)."""

    name: str
    share: float
    #: the variant's plugins, shaped like ``[plugins]``; None: the top-level plugins
    plugins: tuple[Any, ...] | None = None  # tuple[PluginSettings, ...]
    #: the variant's fallback plugin; None: ``[pipeline] fallback``
    fallback: str | None = None


@dataclass(frozen=True)
class RampStep:
    """From ``at`` on, each variant receives ``shares[variant]`` of the units."""

    at: datetime
    shares: Mapping[str, float]


@dataclass(frozen=True)
class Costs:
    """What the placement costs (docs/experiments.md, "ROI")."""

    margin: float = 1.0
    compute_per_1000_requests: float = 0.0
    licences_per_day: float = 0.0


@dataclass(frozen=True)
class Allocation:
    """``fixed``: the declared shares (and ramp); ``thompson``: shares recomputed every
    ``every_hours`` from the arms' posteriors of ``metric`` (docs/experiments.md)."""

    method: str = "fixed"
    metric: str = "conversion_rate"
    every_hours: float = 24.0
    warmup_units: int = 100
    min_share: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class ExperimentSettings:
    """One validated ``[experiments.NAME]`` table."""

    name: str
    placements: tuple[str, ...]
    variants: tuple[VariantSettings, ...]
    control: str
    salt: str
    unit: str = "user"
    start: datetime | None = None
    stop: datetime | None = None
    audience: str = "all"
    holdout: float = 0.0
    layer: str = ""
    layer_range: tuple[float, float] = (0.0, 1.0)
    ramp: tuple[RampStep, ...] = ()
    costs: Costs = Costs()
    allocation: Allocation = Allocation()
    pre_period_days: float = 14.0
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @functools.cached_property
    def range_starts(self) -> tuple[float, ...]:
        """Where each variant's range of the hash space starts: cut once by the
        declared shares, in declaration order (the last range ends at 1)."""
        return (0.0, *itertools.accumulate(v.share for v in self.variants[:-1]))

    def variant(self, name: str) -> VariantSettings:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def running(self, now: datetime) -> bool:
        """Whether units are assigned at ``now`` (inside start <= now < stop)."""
        return ((self.start is None or self.start <= now)
                and (self.stop is None or now < self.stop))

    def summary(self, now: datetime) -> dict[str, Any]:
        """What ``recsdk experiments list`` and the admin API show (JSON values)."""
        return {
            "name": self.name, "placements": list(self.placements), "control": self.control,
            "variants": {v.name: v.share for v in self.variants}, "holdout": self.holdout,
            "shares_now": self.shares_at(now),
            "start": self.start.isoformat() if self.start else None,
            "stop": self.stop.isoformat() if self.stop else None,
            "running": self.running(now),
        }

    def shares_at(self, now: datetime) -> dict[str, float]:
        """Each variant's share of the units at ``now``: the last ramp step at or before
        it (nothing before the first), or the declared shares without a ramp."""
        if not self.ramp:
            return {v.name: v.share for v in self.variants}
        current = dict.fromkeys(self.variant_names, 0.0)
        for step in self.ramp:
            if step.at > now:
                break
            current = dict(step.shares)
        return current

    def timeline(self) -> list[tuple[datetime, str, dict[str, float]]]:
        """Start, each traffic change and stop, with their times, in order: what the
        report needs to account for units that entered the experiment at a ramp-up."""
        out: list[tuple[datetime, str, dict[str, float]]] = []
        if self.start is not None:
            out.append((self.start, "start", self.shares_at(self.start)))
        out += [(s.at, "ramp", dict(s.shares)) for s in self.ramp]
        if self.stop is not None:
            out.append((self.stop, "stop", {}))
        return sorted(out, key=lambda e: e[0])

    def check_plugins(self, available: Iterable[str]) -> None:
        """Refuse a variant that names a plugin that is not installed."""
        known = set(available)
        for v in self.variants:
            for p in v.plugins or ():
                if p.plugin not in known:
                    raise ConfigurationError(
                        f"experiments.{self.name}.variants.{v.name}.plugins.{p.name}: unknown "
                        f"plugin {p.plugin!r}; available: {', '.join(sorted(known))}")


def _fail(name: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"experiments.{name}: {message}")


def load_experiments(
    raw: Mapping[str, Mapping[str, Any]] | None,
    *,
    known_placements: Iterable[str],
    top_plugins: tuple[Any, ...],
    fallback: str,
) -> tuple[ExperimentSettings, ...]:
    """Validate every ``[experiments.NAME]`` table, then the layers across them.

    ``top_plugins``: the top-level ``[plugins]`` (a variant without ``plugins`` uses
    them; a variant plugin of the same name must be the same plugin with the same
    parameters, since both run on one trained instance); ``fallback``: ``[pipeline]``'s.
    """
    placements = set(known_placements)
    out = []
    for name, table in (raw or {}).items():
        if not _NAME.match(name):
            raise _fail(name, f"experiment names must be {_NAME_RULE}")
        if not isinstance(table, Mapping):
            raise _fail(name, "must be a table")
        try:
            data = ExperimentSchema().load(table)
        except ValidationError as exc:
            from recsdk.config import _flatten

            raise _fail(name, _flatten(exc.messages)) from exc
        out.append(_build(name, data, table, placements, top_plugins, fallback))
    _check_shared_plugins(out, top_plugins)
    _check_layers(out)
    return tuple(out)


def _build(name: str, data: Mapping[str, Any], table: Mapping[str, Any], placements: set[str],
           top_plugins: tuple[Any, ...], fallback: str) -> ExperimentSettings:
    from recsdk.config import _split_plugins

    unknown = [p for p in data["placements"] if p not in placements]
    if unknown:
        raise _fail(name, f"unknown placements {unknown}; known placements: "
                    f"{', '.join(sorted(placements))} (add one under [placements.NAME])")
    if "similar" in data["placements"]:
        raise _fail(name, "placement 'similar' serves similar_items, which has no user or "
                    "session to assign; experiments cover recommendation placements")
    variants = []
    for vname, v in data["variants"].items():
        plugins = None
        if v["plugins"] is not None:
            try:
                plugins = _split_plugins(v["plugins"])
            except ConfigurationError as exc:
                raise _fail(name, f"variants.{vname}.{exc}") from exc
            if "filters" not in v["plugins"]:  # added by default: the top-level one's
                top = {p.name: p for p in top_plugins}
                plugins = tuple(top.get(p.name, p) if p.name == "filters" else p
                                for p in plugins)
        fb = v["fallback"] or fallback
        names = {p.name for p in (plugins if plugins is not None else top_plugins)}
        if fb and fb not in names:
            raise _fail(name, f"variants.{vname}: fallback {fb!r} is not among its plugins "
                        f"({', '.join(sorted(names))})")
        variants.append(VariantSettings(vname, v["share"], plugins, v["fallback"]))
    total = math.fsum(v.share for v in variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        shares = ", ".join(f"{v.name}={v.share:g}" for v in variants)
        raise _fail(name, f"variant shares add up to {total:.12g}, not 1 ({shares})")
    vnames = [v.name for v in variants]
    control = data["control"] or vnames[0]
    if control not in vnames:
        raise _fail(name, f"control {control!r} is not one of its variants ({', '.join(vnames)})")
    start, stop = data["start"], data["stop"]
    if start is not None and stop is not None and start >= stop:
        raise _fail(name, f"start {start.isoformat()} is not before stop {stop.isoformat()}")
    lo, hi = data["layer_range"] or (0.0, 1.0)
    if not lo < hi:
        raise _fail(name, f"layer_range [{lo:g}, {hi:g}] is empty: the first bound must be "
                    "below the second")
    ramp = _ramp(name, data["ramp"], {v.name: v.share for v in variants})
    allocation = Allocation(**data["allocation"])
    if allocation.method == "thompson":
        if ramp:
            raise _fail(name, "allocation.method 'thompson' sets the shares itself; remove "
                        "the ramp steps (a ramp and a bandit would both move traffic)")
        if allocation.min_share * len(variants) >= 1:
            raise _fail(name, f"allocation.min_share {allocation.min_share:g} times "
                        f"{len(variants)} variants leaves nothing to allocate; use less "
                        f"than {1 / len(variants):g}")
    return ExperimentSettings(
        name=name, placements=tuple(dict.fromkeys(data["placements"])),
        variants=tuple(variants), control=control, salt=data["salt"] or name,
        unit=data["unit"], start=start, stop=stop,
        audience=data["targeting"].get("audience", "all"),
        holdout=data["holdout"], layer=data["layer"] or f"experiment:{name}",
        layer_range=(lo, hi), ramp=ramp, costs=Costs(**data["costs"]),
        allocation=allocation, pre_period_days=data["pre_period_days"], raw=dict(table),
    )


def _ramp(name: str, steps: list[Mapping[str, Any]], final: Mapping[str, float]
          ) -> tuple[RampStep, ...]:
    """Ramp steps: in time order, each naming every variant, no share above the declared
    one (each variant's range of the hash space) and none shrinking."""
    out: list[RampStep] = []
    previous = dict.fromkeys(final, 0.0)
    for i, step in enumerate(steps):
        shares = dict(step["shares"])
        where = f"ramp[{i}] ({step['at'].isoformat()})"
        if set(shares) != set(final):
            raise _fail(name, f"{where} must give the share of every variant "
                        f"({', '.join(final)}), got {', '.join(shares)}")
        if out and step["at"] <= out[-1].at:
            raise _fail(name, f"{where} is not after the step before it")
        for v, share in shares.items():
            if share > final[v] + SHARE_TOLERANCE:
                raise _fail(name, f"{where}: {v}'s share {share:g} is above its declared "
                            f"share {final[v]:g}; raise the declared share instead")
            if share < previous[v] - SHARE_TOLERANCE:
                raise _fail(name, f"{where}: {v}'s share falls from {previous[v]:g} to "
                            f"{share:g}; shares may only ramp up (units would change arm)")
        out.append(RampStep(step["at"], shares))
        previous = shares
    return tuple(out)


def _plugin_identity(p: Any) -> tuple[Any, ...]:
    """What makes two configured plugins one trained instance (weight may differ)."""
    return (p.plugin, dict(p.params), p.quota, p.timeout_ms, p.max_concurrency)


def _check_shared_plugins(experiments: list[ExperimentSettings],
                          top_plugins: tuple[Any, ...]) -> None:
    seen = {p.name: ("plugins", _plugin_identity(p)) for p in top_plugins}
    for e in experiments:
        for v in e.variants:
            for p in v.plugins or ():
                where = f"experiments.{e.name}.variants.{v.name}.plugins.{p.name}"
                ident = _plugin_identity(p)
                if p.name in seen and seen[p.name][1] != ident:
                    raise ConfigurationError(
                        f"{where} differs from {seen[p.name][0]}.{p.name} (plugin or "
                        f"parameters); plugins are trained once per name: give it its own "
                        f"name, e.g. [{where[: -len(p.name)]}{p.name}_{v.name}] with "
                        f"plugin = {p.plugin!r}")
                seen.setdefault(p.name, (where.rsplit(".", 1)[0], ident))


def _check_layers(experiments: list[ExperimentSettings]) -> None:
    """Experiments in one layer must not overlap; a placement is in one layer only."""
    for i, a in enumerate(experiments):
        for b in experiments[i + 1:]:
            shared = sorted(set(a.placements) & set(b.placements))
            if a.layer == b.layer:
                (alo, ahi), (blo, bhi) = a.layer_range, b.layer_range
                if alo < bhi and blo < ahi:
                    raise ConfigurationError(
                        f"experiments.{a.name} and experiments.{b.name} overlap in layer "
                        f"{a.layer!r}: layer_range [{alo:g}, {ahi:g}] and [{blo:g}, {bhi:g}]; "
                        "give them disjoint ranges")
                if a.unit != b.unit:
                    raise ConfigurationError(
                        f"experiments.{a.name} and experiments.{b.name} share layer "
                        f"{a.layer!r} but not their unit ({a.unit} vs {b.unit})")
            elif shared:
                raise ConfigurationError(
                    f"experiments.{a.name} and experiments.{b.name} both cover placement(s) "
                    f"{', '.join(shared)} in different layers; a request is served by one "
                    "pipeline, so put them in one layer (layer = \"...\") with disjoint "
                    "layer_range")


def experiments_hash_part(experiments: tuple[ExperimentSettings, ...]) -> list[Any]:
    """What of the experiments shapes the recommendations themselves (the variants'
    pipelines), for the configuration hash; who gets which variant is left out."""
    return [[e.name, [[v.name, v.fallback, None if v.plugins is None else
                       [[p.name, p.plugin, p.weight, dict(p.params), p.quota]
                        for p in v.plugins]] for v in e.variants]]
            for e in experiments]


#: What decides who is in which arm: none of it may change once an experiment runs
#: (only ramp steps to come may be added, and the stop moved).
FROZEN_KEYS = ("salt", "unit", "variants", "audience", "holdout", "layer", "layer_range",
               "start", "allocation")


def record(experiment: ExperimentSettings) -> dict[str, Any]:
    """The experiment's assignment-relevant settings as JSON-able values, to store when
    it first serves and to compare the next configuration with (:func:`check_change`)."""
    return {
        "salt": experiment.salt, "unit": experiment.unit,
        "variants": [[v.name, v.share] for v in experiment.variants],
        "audience": experiment.audience, "holdout": experiment.holdout,
        "layer": experiment.layer, "layer_range": list(experiment.layer_range),
        "start": None if experiment.start is None else experiment.start.isoformat(),
        "stop": None if experiment.stop is None else experiment.stop.isoformat(),
        "ramp": [[s.at.isoformat(), dict(s.shares)] for s in experiment.ramp],
        "allocation": dataclasses.asdict(experiment.allocation),
    }


def check_change(previous: Mapping[str, Any], experiment: ExperimentSettings,
                 now: datetime) -> None:
    """Refuse a change that would move units between arms of a running experiment.

    ``previous``: the :func:`record` stored when it last served. Before the experiment
    starts, anything may change; once it runs, only ramp steps after ``now`` and the
    stop may (so that every traffic change the report sees is a recorded ramp-up).
    """
    start = previous.get("start")
    if start is not None and datetime.fromisoformat(start) > now:
        return
    current = record(experiment)
    # records stored before allocations existed were fixed splits
    previous = {"allocation": dataclasses.asdict(Allocation()), **previous}
    changed = [k for k in FROZEN_KEYS if previous.get(k) != current[k]]
    if changed:
        raise _fail(experiment.name, f"{', '.join(changed)} changed while the experiment "
                    "runs, which would move units between arms; start a new experiment "
                    "(another name or salt) instead")
    past = [s for s in previous.get("ramp", []) if datetime.fromisoformat(s[0]) <= now]
    if current["ramp"][:len(past)] != past:
        raise _fail(experiment.name, "ramp steps already in effect were changed or removed; "
                    "only steps after now may be added")
