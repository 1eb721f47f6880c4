import dataclasses

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofa.config import Config, ConfigError, dump_config, load_config, parse_override, to_dict


def write(tmp_path, data, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_are_valid_and_round_trip(tmp_path):
    cfg = load_config({})
    text = dump_config(cfg)
    assert "neurofa_version" in text
    again = load_config(write(tmp_path, yaml.safe_load(text)))  # provenance section is ignored on reload
    assert again == cfg


def test_overrides_convert_types():
    cfg = load_config({}, ["plasticity.eta_bw=20", "network.layers=[3, 4, 2]", "simulation.prospective=false",
                           "plasticity.feedback=fa", "simulation.duration=1e3"])
    assert cfg.plasticity.eta_bw == [20.0]
    assert cfg.network.layers == [3, 4, 2]
    assert cfg.simulation.prospective is False
    assert cfg.simulation.duration == 1000.0
    cfg = load_config({}, {"plasticity.sigma": 0.02})
    assert cfg.plasticity.sigma == 0.02


def test_unknown_key_names_file_path_and_close_match(tmp_path):
    path = write(tmp_path, {"plasticity": {"eta_bww": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "plasticity.eta_bww" in msg and "eta_bw" in msg and "\n" not in msg


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"plasticity.feedback = 'pall'.*allowed: bp, fa.*did you mean 'pal'"):
        load_config({"plasticity": {"feedback": "pall"}})
    with pytest.raises(ConfigError, match="not allowed for model 'microcircuit'"):
        load_config({"plasticity": {"feedback": "dfa"}})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"conductances": {"g_l": -0.1}}, "conductances.g_l"),
        ({"conductances": {"g_bas": "big"}}, "conductances.g_bas"),
        ({"network": {"layers": [5, -3, 2]}}, "network.layers"),
        ({"network": {"layers": [5]}}, "network.layers"),
        ({"simulation": {"dt": 0}}, "simulation.dt"),
        ({"simulation": {"seeds": 1.5}}, "simulation.seeds"),
        ({"plasticity": {"eta_bw": [1, 2]}}, "plasticity.eta_bw"),
        ({"task": {"name": "yinyang"}}, "network.layers"),
        ({"simulation": {"prospective": "yes"}}, "simulation.prospective"),
        ({"network": "big"}, "network"),
        ({"simulation": {"duration": 100.0, "record_interval": 200.0}}, "simulation.record_interval"),
    ],
)
def test_bad_values_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(data)


def test_malformed_yaml_is_one_line(tmp_path):
    path = write(tmp_path, "network: [1, 2\nplasticity: {")
    with pytest.raises(ConfigError, match="malformed YAML at line") as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_parse_override_requires_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("plasticity.eta_bw")
    assert parse_override("a.b=[1,2]") == ("a.b", [1, 2])


# -- property-based: random mutations of a valid configuration never escape as a traceback ---------------------

_DEFAULT = to_dict(Config())
_PATHS = [(s, k) for s, sec in _DEFAULT.items() if isinstance(sec, dict) for k in sec] + [
    (k,) for k, v in _DEFAULT.items() if not isinstance(v, dict)
]
_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.lists(st.one_of(st.integers(-5, 50), st.floats(-1e3, 1e3), st.text(max_size=3)),
                                  max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_PATHS), _values),
    st.tuples(st.just("del"), st.sampled_from(_PATHS), st.none()),
    st.tuples(st.just("add"), st.sampled_from(list(_DEFAULT)), st.text(min_size=1, max_size=6)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutation, min_size=1, max_size=4))
def test_random_mutations_raise_only_config_errors(mutations):
    import copy

    data = copy.deepcopy(_DEFAULT)
    for op, path, value in mutations:
        if op == "add":
            if isinstance(data.get(path), dict):
                data[path][value + "_x"] = 1
            continue
        node = data
        for part in path[:-1]:
            node = node[part] if isinstance(node.get(part), dict) else {}
        if op == "del":
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    try:
        cfg = load_config(data)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(cfg, Config)
        assert all(n >= 1 for n in cfg.network.layers)
        assert dataclasses.asdict(cfg)
