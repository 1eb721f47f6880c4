"""Populations (``network.population``, docs/science.md §3.9): N spiking cells per rate unit keep the mean field
and shrink the spike noise like 1/√N.

- the Binomial draw of how many cells fire is the exact inverse distribution function;
- the rate model, the mean-field configuration and the run arguments other than ``pop_size`` do not depend on N;
- bad population settings are one-line errors;
- the learning level's fit against N passes a gap ∝ N^(−1/2) and fails a gap that does not fall.
The dynamics level at N = 1, 4 and 16 on a real tiny network is in ``tests/test_validate.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import neurofa as nf
from neurofa.cli import main
from neurofa.config import ConfigError, load_config, to_dict
from neurofa.runner import estimate
from neurofa.spiking import mean_field_config
from neurofa.spiking.network import binomial_inverse
from neurofa.validate import compare, population_config, population_learning_level

SMALL = {
    "name": "tiny_population",
    "network": {"layers": [3, 6, 2]},
    "plasticity": {"feedback": "fa"},
    "task": {"name": "teacher", "n_train": 20},
    "simulation": {"duration": 200.0, "record_interval": 50.0, "seeds": 2},
}


@pytest.mark.parametrize("n, p", [(1, 0.3), (4, 0.02), (16, 0.2), (64, 0.004), (200, 0.5), (4096, 0.05),
                                  (11600, 0.05)])  # the last: near the largest population allowed at ν_max dt 0.05
def test_the_population_draw_is_the_binomial_inverse_distribution_function(n: int, p: float) -> None:
    u = np.random.default_rng(n).uniform(size=20000)
    k = binomial_inverse(u, n, np.full(u.shape, p))
    # scipy's ppf is the smallest k with F(k) ≥ u; ours the smallest with F(k) > u: equal off the atoms' edges
    edge = np.isclose(stats.binom.cdf(k - 1, n, p), u) | np.isclose(stats.binom.cdf(k, n, p), u)
    assert np.array_equal(k[~edge], stats.binom.ppf(u[~edge], n, p))
    # and the draws have the Binomial moments (5 standard errors)
    assert abs(k.mean() - n * p) < 5 * np.sqrt(n * p * (1 - p) / u.size)
    assert k.var() == pytest.approx(n * p * (1 - p), rel=0.1)


def test_the_population_draw_at_the_edges() -> None:
    u = np.array([0.0, 0.5, 0.999999])
    assert np.array_equal(binomial_inverse(u, 16, np.zeros(3)), np.zeros(3))
    assert np.array_equal(binomial_inverse(u, 16, np.ones(3)), np.full(3, 16.0))
    assert np.array_equal(binomial_inverse(u, 16, np.full(3, 1.5)), np.full(3, 16.0))  # ν_max φ dt > 1 saturates
    assert binomial_inverse(np.array([0.999999999]), 16, np.array([0.5]))[0] <= 16


def test_the_mean_field_does_not_depend_on_the_population_size() -> None:
    cfg = load_config(SMALL)
    big = population_config(cfg, 16)
    assert big.network.population == 16
    one, sixteen = to_dict(mean_field_config(cfg)), to_dict(mean_field_config(big))
    sixteen["network"]["population"] = 1
    assert one == sixteen
    a = nf.run(cfg, backend="rate", progress=False).dataset
    b = nf.run(big, backend="rate", progress=False).dataset
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("network, spiking, message", [
    ({"population": 0}, {}, "network.population = 0"),
    ({"population": 4}, {"record_spikes": "all"},
     "network.population = 4 is not allowed with spiking.record_spikes = ['all']"),
    ({"population": 11700}, {"nu_max": 500.0, "dt": 0.1},
     "network.population = 11700 is too large for spiking.nu_max = 500.0 and spiking.dt = 0.1"),
])
def test_bad_population_settings_are_one_line_errors(network: dict, spiking: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        estimate(load_config({**SMALL, "network": {**SMALL["network"], **network}, "spiking": spiking}), "spiking", 1)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [("4", "at least two different"), ("1,x", "whole numbers"),
                                           ("0,4", "positive whole numbers")])
def test_bad_population_lists_are_one_line_errors(text: str, message: str, tmp_path, capsys) -> None:
    assert main(["compare", "models/quickstart.yaml", "--populations", text, "--out", str(tmp_path / "c")]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "--populations" in err and "\n" not in err


@pytest.mark.parametrize("sizes", [[4], [4, 4], [0, 4], [1.5, 4]])
def test_compare_refuses_a_bad_population_list_before_simulating(sizes: list) -> None:
    with pytest.raises(ConfigError, match="--populations"):
        compare(SMALL, populations=sizes, levels=("dynamics",), progress=False)


def test_the_learning_gap_fit_accepts_spike_noise_and_rejects_a_floor() -> None:
    sizes = [1, 4, 16, 64]
    rng = np.random.default_rng(3)
    noise = [{"weights": list(0.1 / np.sqrt(n) * rng.lognormal(0, 0.1, 3)),
              "angle": list(4.0 / np.sqrt(n) * rng.lognormal(0, 0.1, 3))} for n in sizes]
    level = population_learning_level(sizes, noise)
    assert level["populations_learning_passed"]
    assert level["populations_learning_weights_slope_ci"][0] < 0.5 < level["populations_learning_weights_slope_ci"][1]
    floor = [{"weights": list(0.05 + 0.05 / np.sqrt(n) * rng.lognormal(0, 0.1, 3))} for n in sizes]
    assert not population_learning_level(sizes, floor)["populations_learning_passed"]
