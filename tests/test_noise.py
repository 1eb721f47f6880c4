"""The spike-train rule's weight noise (:mod:`neurofa.spiking.noise`, docs/science.md §3.10): σ_w is the standard
deviation of the random walk that the rule's count noise drives, it falls like 1/√N, and the rate estimator has
none."""

from __future__ import annotations

import numpy as np
import pytest

from neurofa.config import load_config
from neurofa.spiking.network import binomial_inverse
from neurofa.spiking.noise import PHI_REFERENCE, annealed_presentations, weight_noise
from neurofa.spiking.params import effective_parameters

SMALL = {
    "name": "tiny_noise",
    "network": {"layers": [3, 4, 2], "population": 8},
    "plasticity": {"feedback": "fa", "eta_fw": [2.0, 0.2], "eta_decay": 20.0},
    "task": {"name": "teacher", "n_train": 20, "t_pres": 2.0},
    "simulation": {"duration": 40.0, "record_interval": 40.0},
    "spiking": {"nu_max": 400.0, "dt": 0.5, "t_pres": 20.0, "tau_s": 2.0},
}


def test_weight_noise_is_the_std_of_the_rules_random_walk() -> None:
    """Monte Carlo of the rule's noise with the backend's own Binomial draw: per step the population fires
    Binomial(N, ν_max φ dt) cells, the weight jumps by η f_m x n/(N ν_max) and drifts by −η f_m φ x dt (the mean
    field's term at its fixed point φ(v̂) = φ); after the run the spread over realisations is σ_w."""
    cfg = load_config(SMALL)
    eff = effective_parameters(cfg)
    eta = cfg.plasticity.eta_fw[0] / eff.time_scale
    nu, n_cells = eff.nu_max / 1000.0, cfg.network.population
    steps = int(round(eff.t_pres / eff.dt))
    presentations = int(round(eff.duration / eff.t_pres))
    rng = np.random.default_rng(0)
    w = np.zeros(4000)
    for m in range(presentations):
        f = 1.0 / (1.0 + m * eff.t_pres / eff.eta_decay)
        for _ in range(steps):
            n = binomial_inverse(rng.uniform(size=w.size), n_cells, np.full(w.size, nu * PHI_REFERENCE * eff.dt))
            w += eta * f * (n / (n_cells * nu) - PHI_REFERENCE * eff.dt)
    sigma = weight_noise(cfg)[0]
    assert abs(w.mean()) < 4 * sigma / np.sqrt(w.size)
    # the Binomial's variance is the Poisson one times (1 − ν_max φ dt): 0.95 here
    assert w.std() == pytest.approx(sigma * np.sqrt(1 - nu * PHI_REFERENCE * eff.dt), rel=0.05)


def test_weight_noise_falls_like_one_over_root_n_and_the_rate_rule_has_none() -> None:
    base = weight_noise(load_config(SMALL))
    big = weight_noise(load_config({**SMALL, "network": {**SMALL["network"], "population": 128}}))
    np.testing.assert_allclose(np.array(big), np.array(base) / 4.0, rtol=1e-12)
    assert base[1] == pytest.approx(base[0] / 10.0)  # ∝ η: the output's η is a tenth of the hidden's
    rate = load_config({**SMALL, "spiking": {**SMALL["spiking"], "post_signal": "rate"}})
    assert weight_noise(rate) == (0.0, 0.0)
    frozen = load_config({**SMALL, "plasticity": {**SMALL["plasticity"], "freeze_hidden": True}})
    assert weight_noise(frozen)[0] == 0.0 and weight_noise(frozen)[1] == base[1]


def test_annealing_bounds_the_walk() -> None:
    """Σ f_m² = M without annealing (M = 20 presentations of 20 ms here), and tends to T_η / t_pres + 1/2 (the
    sum's Euler–Maclaurin limit; T_η = 200 ms spiking) for runs much longer than T_η."""
    plain = load_config({**SMALL, "plasticity": {**SMALL["plasticity"], "eta_decay": 0.0}})
    assert annealed_presentations(plain) == pytest.approx(20.0)
    long = load_config({**SMALL, "simulation": {"duration": 40000.0, "record_interval": 40000.0}})
    assert annealed_presentations(long) == pytest.approx(10.5, rel=0.01)
