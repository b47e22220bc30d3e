"""Every Prometheus label takes a bounded set of values, whatever the traffic sends."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

from recsdk.config import load_settings
from recsdk.telemetry import MAX_VARIANT_LABELS, OTHER, LabelValues, Telemetry, hook_names

REPO = Path(__file__).resolve().parents[2]
SETTINGS = load_settings({"plugins": {"popularity": {}, "trending": {}},
                          "placements": {"cart": {"k": 2}}}, environ={})


def random_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_letters + string.digits + "-_", k=12))
            for _ in range(n)]


def exercise(telemetry: Telemetry, placement: str, variant: str, plugin: str,
             hook: str) -> None:
    """One use of every labelled metric, as the SDK's call sites make them."""
    telemetry.recommendations.labels(placement=placement, variant=variant,
                                     outcome="ok").inc()
    telemetry.latency.labels(placement=placement).observe(0.003)
    telemetry.plugin_failures.labels(plugin=plugin, hook=hook, kind="timeout").inc()


def test_a_thousand_random_names_add_no_series():
    telemetry = Telemetry(SETTINGS)
    exercise(telemetry, "cart", "default", "popularity", "recsdk_score")
    for variant in random_names(MAX_VARIANT_LABELS, seed=1):  # variants the shop uses
        exercise(telemetry, "cart", variant, "popularity", "recsdk_score")
    exercise(telemetry, "unknown", "one-too-many", "unknown", "unknown")  # `other` series
    before = telemetry.series()
    for name in random_names(1000):
        exercise(telemetry, name, name, name, name)
    assert telemetry.series() == before
    text = telemetry.render().decode()
    assert f'placement="{OTHER}"' in text and f'plugin="{OTHER}"' in text
    assert telemetry.value("recsdk_recommendations", placement=OTHER, variant=OTHER,
                           outcome="ok") == 1001


def test_configured_names_keep_their_own_series():
    telemetry = Telemetry(SETTINGS)
    for placement in SETTINGS.known_placements:
        exercise(telemetry, placement, "default", "trending", "recsdk_rerank")
        assert telemetry.value("recsdk_recommendations", placement=placement,
                               variant="default", outcome="ok") == 1
    assert telemetry.value("recsdk_plugin_failures", plugin="trending",
                           hook="recsdk_rerank", kind="timeout") == len(SETTINGS.known_placements)


def test_without_settings_the_built_ins_and_the_first_plugins_are_kept():
    telemetry = Telemetry()
    exercise(telemetry, "home", "default", "mine", "recsdk_fit")
    exercise(telemetry, "checkout", "default", "mine", "recsdk_fit")
    assert telemetry.value("recsdk_recommendations", placement="home", variant="default",
                           outcome="ok") == 1
    assert telemetry.value("recsdk_recommendations", placement=OTHER, variant="default",
                           outcome="ok") == 1
    assert telemetry.value("recsdk_plugin_failures", plugin="mine", hook="recsdk_fit",
                           kind="timeout") == 2
    before = telemetry.series()
    for name in random_names(1000, seed=2):
        exercise(telemetry, "home", "default", name, "recsdk_fit")
    assert telemetry.series() - before <= 64 * 2  # the plugin cap: a counter and _created


def test_label_values_cap_the_first_seen():
    values = LabelValues(["a"], extra=2)
    assert [values(v) for v in ["a", "b", "c", "b", "d", "a"]] == ["a", "b", "c", "b",
                                                                  OTHER, "a"]


def test_hook_labels_are_the_specification_s_hooks():
    names = hook_names()
    assert {"recsdk_score", "recsdk_rerank", "recsdk_fit"} <= names
    assert all(n.startswith("recsdk_") for n in names)


def test_every_labelled_call_site_is_bounded():
    """An audit that stays true: a `.labels(` call either goes through a bounded metric
    or passes only values the code spells out."""
    bounded = {"recommendations", "latency", "plugin_failures", "plugin_skipped",
               "plugin_breaker_state", "plugin_in_flight", "beacon_accepted",
               "beacon_refused"}
    literal_only = {"events", "cache_errors", "request_log_dropped"}
    telemetry = Telemetry()
    for name in bounded:
        assert hasattr(getattr(telemetry, name), "values"), name
    call = re.compile(r"telemetry\.(\w+)\.labels\(([^)]*)\)", re.S)
    seen = set()
    for path in (REPO / "recsdk").rglob("*.py"):
        for metric, args in call.findall(path.read_text()):
            seen.add(metric)
            assert metric in bounded | literal_only, (path, metric)
            if metric in literal_only:
                for value in re.findall(r"=\s*([^,]+)", args):
                    assert re.fullmatch(r'\s*("[a-z_]+"|operation)\s*', value), (path, args)
    assert {"recommendations", "latency", "events"} <= seen


def test_beacon_labels_are_the_capture_layer_s_literals():
    telemetry = Telemetry()
    telemetry.beacon_refused.labels(reason="replay").inc()
    telemetry.beacon_refused.labels(reason="made-up").inc()
    telemetry.beacon_accepted.labels(type="wishlist").inc()
    assert telemetry.value("recsdk_beacon_refused", reason="replay") == 1
    assert telemetry.value("recsdk_beacon_refused", reason=OTHER) == 1
    assert telemetry.value("recsdk_beacon_accepted", type=OTHER) == 1
