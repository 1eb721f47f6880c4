"""Populations (``network.population``, docs/science.md §3.9): N spiking cells per rate unit keep the mean field
and shrink the spike noise like 1/√N.

- the Binomial draw of how many cells fire is the exact inverse distribution function;
- the rate model, the mean-field configuration and the run arguments other than ``pop_size`` do not depend on N;
- bad population settings are one-line errors;
- the learning level's fit against N passes a gap ∝ N^(−1/2) and fails a gap that does not fall.
The dynamics level at N = 1, 4 and 16 on a real tiny network is in ``tests/test_validate.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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


#: the last three start from P(0) = (1 − p)^n below the normal doubles (e^−1026, e^−9431, e^−2563): the scaled recursion
DRAWS = [(1, 0.3), (4, 0.02), (16, 0.2), (64, 0.004), (200, 0.5), (4096, 0.05), (11600, 0.05), (20000, 0.05),
         (4096, 0.9), (50000, 0.05)]


@pytest.mark.parametrize("n, p", DRAWS)
def test_the_population_draw_is_the_binomial_inverse_distribution_function(n: int, p: float) -> None:
    u = np.random.default_rng(n).uniform(size=20000)
    k = binomial_inverse(u, n, np.full(u.shape, p))
    # scipy's ppf is the smallest k with F(k) ≥ u; ours the smallest with F(k) > u: equal off the atoms' edges
    edge = np.isclose(stats.binom.cdf(k - 1, n, p), u) | np.isclose(stats.binom.cdf(k, n, p), u)
    assert np.array_equal(k[~edge], stats.binom.ppf(u[~edge], n, p))
    # and the draws have the Binomial moments (5 standard errors)
    assert abs(k.mean() - n * p) < 5 * np.sqrt(n * p * (1 - p) / u.size)
    assert k.var() == pytest.approx(n * p * (1 - p), rel=0.1)


def _compiled_draws(code: str, u: np.ndarray, n: np.ndarray, p: np.ndarray, where: Path) -> np.ndarray:
    """``population_spikes(u, n, p)`` of the C++ support code ``code``, compiled on its own with the C++ compiler."""
    source = where / "draw.cpp"
    source.write_text("#include <cmath>\n#include <cstdio>\nusing namespace std;\n" + code + """
int main() {
    double u, n, p;
    while (scanf("%lf %lf %lf", &u, &n, &p) == 3) printf("%.1f\\n", population_spikes(u, n, p));
    return 0;
}
""")
    program = where / "draw"
    subprocess.run([shutil.which("c++") or "g++", "-O2", str(source), "-o", str(program)], check=True)
    lines = "\n".join(f"{a!r} {b!r} {c!r}" for a, b, c in zip(u.tolist(), n.tolist(), p.tolist()))
    out = subprocess.run([str(program)], input=lines, capture_output=True, text=True, check=True).stdout
    return np.array(out.split(), dtype=float)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler")
def test_the_cpp_and_cython_draws_are_the_numpy_draw(tmp_path: Path) -> None:
    """The C++ (cpp_standalone) and Cython (runtime) implementations are the recursion of :func:`binomial_inverse`
    on both of its paths (P(0) a normal double, and the scaled recursion below), spike for spike."""
    from brian2 import Network, NeuronGroup, defaultclock, ms, prefs

    from neurofa.spiking.network import _BINOMIAL_CPP, POPULATION_SPIKES

    cases = [(16, 0.2), (4096, 0.05), (20000, 0.05), (4096, 0.9)]
    size = 1000
    u = np.random.default_rng(7).uniform(size=size * len(cases))
    n = np.repeat([float(c[0]) for c in cases], size)
    p = np.repeat([c[1] for c in cases], size)
    expected = np.concatenate([binomial_inverse(u[i * size:(i + 1) * size], c[0], p[i * size:(i + 1) * size])
                               for i, c in enumerate(cases)])
    assert np.array_equal(_compiled_draws(_BINOMIAL_CPP, u, n, p, tmp_path), expected)
    target = prefs.codegen.target
    prefs.codegen.target = "cython"
    try:
        group = NeuronGroup(u.size, "u : 1\nn_cells : 1\np_fire : 1\nk : 1",
                            namespace={"population_spikes": POPULATION_SPIKES})
        group.u, group.n_cells, group.p_fire = u, n, p
        group.run_regularly("k = population_spikes(u, n_cells, p_fire)")
        defaultclock.dt = 0.1 * ms
        Network(group).run(0.1 * ms)
    finally:
        prefs.codegen.target = target
    assert np.array_equal(np.asarray(group.k), expected)


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
