r"""The spike-train rule's weight noise: how far its weights random-walk over a run (``docs/science.md`` §3.10).

With ``spiking.post_signal: spikes`` the Urbanczik–Senn rule of W_ℓ (:mod:`neurofa.model.rules.urbanczik`) reads
the population's spike train S/(N ν_max) where its mean field reads φ(ŭ). Over presentation m, of length T, the
increment of a synapse whose presynaptic trace is x is

.. math:: \Delta w_m = \eta\, f_m\, x \int_0^T \Big(\frac{S(t)}{N \nu_{max}} - \varphi(\hat v)\Big)\, dt,

whose mean is the mean field's η f_m x T (φ(ŭ) − φ(v̂)) and whose count noise has the standard deviation
η f_m x √(φ T / (N ν_max)) (a Poisson count of mean N ν_max φ T). The noise of successive presentations is
independent, and below the output nothing pulls the weights back: the hidden error g_api v_api / (g_l + g_bas +
g_api) does not depend on W_ℓ, and the read-out compensates a change of the hidden code. So the noise adds up as a
random walk, whose standard deviation after the run's M presentations is

.. math:: \sigma_w = \eta \sqrt{\frac{\varphi T}{N \nu_{max}}} \sqrt{\sum_{m<M} f_m^2}\; x,
          \qquad f_m = \frac{1}{1 + m\, T / T_\eta}

(f the annealing factor of :func:`neurofa.circuit.learning_rate_factor`; Σ f_m² → T_η/T + 1/2 for runs much
longer than T_η, M without annealing). :func:`weight_noise` gives σ_w at φ = 1/2 and x = 1 for every forward layer,
in the units of the weights. The mean field has no such term; how large σ_w may be depends on the weights a task
needs (the measured cases are in ``docs/science.md`` §3.10).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from neurofa.circuit import learning_rate_factor
from neurofa.config import Config
from neurofa.model import compile_model
from neurofa.spiking.params import effective_parameters, mean_field_config

__all__ = ["PHI_REFERENCE", "annealed_presentations", "weight_noise"]

#: the rate φ at which :func:`weight_noise` is quoted (the middle of a logistic cell's range)
PHI_REFERENCE = 0.5


def annealed_presentations(cfg: Config) -> float:
    """Σ_m f_m² over the presentations of the spiking run: the number of presentations a random walk of
    annealed steps is worth (the module docstring)."""
    eff = effective_parameters(cfg)
    n = int(round(eff.duration / eff.t_pres))
    plasticity = dataclasses.replace(cfg.plasticity, eta_decay=eff.eta_decay)
    f = np.array([learning_rate_factor(m * eff.t_pres, plasticity) for m in range(n)])
    return float(np.sum(f**2))


def weight_noise(cfg: Config) -> tuple[float, ...]:
    """σ_w of every forward projection W_1 … W_N at φ = 1/2 and x = 1 (the module docstring), with the learning
    rates the spiking backend simulates (the model description of :func:`mean_field_config`): 0 for a layer that
    does not learn, and all zeros when the rule reads rates (``spiking.post_signal: rate``)."""
    forward = compile_model(mean_field_config(cfg)).of_kind("W")
    if cfg.spiking.post_signal != "spikes":
        return (0.0,) * len(forward)
    eff = effective_parameters(cfg)
    nu = eff.nu_max / 1000.0  # per ms
    count = math.sqrt(PHI_REFERENCE * eff.t_pres / (cfg.network.population * nu))
    walk = math.sqrt(annealed_presentations(cfg))
    return tuple(getattr(p.rule, "eta", 0.0) * count * walk for p in forward)
