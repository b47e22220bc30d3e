from __future__ import annotations

import pytest

from recsdk.config import DEFAULT_DATABASE_URL, load_settings
from recsdk.errors import ConfigurationError


def test_defaults_enable_popularity_and_filters():
    s = load_settings(environ={})
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.redis_url is None
    assert [p.name for p in s.plugins] == ["popularity", "filters"]
    assert s.pipeline["k"] == 10


def test_toml_then_dict_then_environment(tmp_path):
    path = tmp_path / "recsdk.toml"
    path.write_text(
        'database_url = "sqlite:///from-file.db"\nseed = 3\n'
        "[plugins.trending]\nweight = 0.5\nhalf_life_hours = 12\n"
        "[pipeline]\nk = 7\n"
    )
    s = load_settings({"seed": 5}, environ={"RECSDK_CONFIG": str(path)})
    assert s.database_url == "sqlite:///from-file.db"
    assert s.seed == 5
    assert s.pipeline["k"] == 7
    trending = s.plugin("trending")
    assert trending.weight == 0.5 and trending.params == {"half_life_hours": 12}
    env = {"RECSDK_CONFIG": str(path), "RECSDK_DATABASE_URL": "sqlite:///env.db",
           "RECSDK_REDIS_URL": "redis://h:1/0", "RECSDK_PLUGINS": "trending,popularity"}
    s = load_settings(environ=env)
    assert s.database_url == "sqlite:///env.db"
    assert s.redis_url == "redis://h:1/0"
    assert [p.name for p in s.plugins] == ["trending", "popularity", "filters"]
    # parameters from the file survive RECSDK_PLUGINS choosing the set
    assert s.plugin("trending").params == {"half_life_hours": 12}


def test_unknown_key_is_named():
    with pytest.raises(ConfigurationError, match="databse_url"):
        load_settings({"databse_url": "x"}, environ={})


def test_bad_nested_value_is_named():
    with pytest.raises(ConfigurationError, match=r"pipeline\.k"):
        load_settings({"pipeline": {"k": "ten"}}, environ={})
    with pytest.raises(ConfigurationError, match=r"pipeline\.tiemout_ms"):
        load_settings({"pipeline": {"tiemout_ms": 3}}, environ={})


def test_bad_weight_is_named():
    with pytest.raises(ConfigurationError, match=r"plugins\.popularity"):
        load_settings({"plugins": {"popularity": {"weight": "heavy"}}}, environ={})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[plugins\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_bad_seed_environment():
    with pytest.raises(ConfigurationError, match="RECSDK_SEED"):
        load_settings(environ={"RECSDK_SEED": "abc"})


def test_disabled_plugin_and_config_hash():
    a = load_settings({"plugins": {"popularity": {}, "filters": {"enabled": False}}},
                      environ={})
    assert [p.name for p in a.plugins] == ["popularity"]
    b = load_settings({"plugins": {"popularity": {"weight": 2}}}, environ={})
    c = load_settings({"plugins": {"popularity": {"weight": 2}}}, environ={})
    assert b.config_hash == c.config_hash
    assert a.config_hash != b.config_hash


def test_placements_are_validated():
    s = load_settings({"placements": {"home": {"k": 6, "weights": {"trending": 2}}}},
                      environ={})
    assert s.placements["home"] == {"k": 6, "weights": {"trending": 2.0}}
    with pytest.raises(ConfigurationError, match=r"placements\.home"):
        load_settings({"placements": {"home": {"size": 6}}}, environ={})
    with pytest.raises(ConfigurationError, match=r"placements\.home"):
        load_settings({"placements": {"home": {"weights": {"trending": -1}}}}, environ={})


def test_a_plugins_own_seed_is_read_hashed_and_kept_out_of_its_parameters():
    plain = load_settings({"plugins": {"popularity": {}}}, environ={})
    seeded = load_settings({"plugins": {"popularity": {"seed": 7}}}, environ={})
    other = load_settings({"plugins": {"popularity": {"seed": 8}}}, environ={})
    (p,) = [p for p in seeded.plugins if p.name == "popularity"]
    assert p.seed == 7 and "seed" not in p.params
    assert next(p for p in plain.plugins if p.name == "popularity").seed is None
    assert len({plain.config_hash, seeded.config_hash, other.config_hash}) == 3


@pytest.mark.parametrize("bad", ["7", -1, True, 1.5])
def test_a_bad_plugin_seed_is_named(bad):
    with pytest.raises(ConfigurationError, match=r"plugins\.popularity\.seed must be a "
                                                 r"non-negative integer"):
        load_settings({"plugins": {"popularity": {"seed": bad}}}, environ={})
