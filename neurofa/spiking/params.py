r"""Parameters of the spiking microcircuit and its exact rate mean field (pure Python, no Brian2).

The spiking model (Max2024, Urbanczik2014, SCIENCE.md §3) is the rate microcircuit with Poisson spikes. Its time
scales are set by biology, not by the rate model's numerics: a cell fires at most ν_max (100–300 Hz), each spike
adds 1/(ν_max τ_s) to an exponential synaptic trace x (τ ẋ = −x, so E[x] = φ(ŭ)), and a presentation must last
long enough for several spikes. :func:`effective_parameters` turns a configuration into the numbers the spiking
backend actually uses; :func:`mean_field_config` returns the rate configuration whose dynamics are the exact mean
field of that spiking model (same dt, same trace filter, same PAL filters, same learning rates), so
``neurofa compare`` can check that the two differ only by spike noise.

Derivation (defaults; every ``spiking.*`` value > 0 overrides its derived value):

**Presentation time.** A cell at half-maximal rate must emit at least ``N_SPIKES`` = 5 spikes per presentation
and the traces must settle (``SETTLE`` = 10 trace time constants), so
t_pres = max(task.t_pres, 2 N_SPIKES / ν_max, SETTLE τ_s); with ν_max = 200 Hz, τ_s = 3 ms this is 50 ms.
All other times of the rate configuration are scaled by k = t_pres / task.t_pres (duration, record and test
intervals, PAL's τ_LO, the annealing time plasticity.eta_decay) and all learning rates by 1/k, so the weight
change per presentation is unchanged.

**PAL noise time constant τ_ξ.** The PAL signal is the zero-lag correlation of ξ_ℓ with the high-passed trace of
layer ℓ+1. Between the two lie layer ℓ's spikes and trace (low-pass τ_s), layer ℓ+1's basal potential and spikes
and trace (low-pass τ_s), then the high-pass τ_HP. For an OU process of correlation time τ_ξ the zero-lag
cross-covariance through a linear filter H is σ_ξ² H(1/τ_ξ) (H the Laplace transform), so the fraction of the
noise that reaches x^HP_{ℓ+1} is

.. math:: G = \left(\frac{\tau_\xi}{\tau_\xi + \tau_s}\right)^2 \frac{\tau_{HP}}{\tau_{HP} + \tau_\xi}.

The estimator's variance is dominated by the shot noise of the trace (variance φ/(2 ν_max τ_s)) multiplied by ξ,
whose integrated correlation is ∝ τ_ξ τ_s/(τ_ξ + τ_s). The signal-to-noise ratio G/√(τ_ξ τ_s/(τ_ξ+τ_s)) is
maximal near τ_ξ = 2–3 τ_s; we take τ_ξ = ``TAU_XI_PER_TAU_S`` · τ_s = 2 τ_s (6 ms; G ≈ 0.28 with the τ_HP below).
In the rate model (τ_s → 0, dt 0.01 ms) τ_ξ = 0.1 ms only had to exceed the one-step lag per layer.

**High-pass τ_HP.** It must remove the trace's mean and the input changes at the presentation scale but keep the
noise: after an input change the high-passed trace decays with τ_HP, so a fraction ≈ τ_HP / t_pres of each
presentation carries input transients (zero-mean against ξ, i.e. variance, not bias), while the noise keeps the
fraction τ_HP/(τ_HP+τ_ξ). We take τ_HP = t_pres / ``HP_PER_T_PRES`` = t_pres / 5 (10 ms at 50 ms), but never below
τ_ξ.

**Noise amplitude σ.** In the rate model a small σ (0.05) suffices because nothing else perturbs the soma. With
spikes every dendritic potential already fluctuates by the shot noise of its inputs; PAL's apical noise must be
of the same order to be detectable within seconds. We set the somatic standard deviation caused by ξ,
τ_P g_api σ_ξ (σ_ξ = σ/√2, the stationary SD of the OU process τ_ξ ξ̇ = −ξ + σ √τ_ξ η of SCIENCE.md §2), equal
to the shot-noise SD of one trace at half-maximal rate, √(1 / (4 ν_max τ_s)):

.. math:: \sigma = \frac{\sqrt{2}}{\tau_P g_{api}} \sqrt{\frac{1}{4 \nu_{max} \tau_s}} \quad(\approx 2.9
   \text{ for PAL's conductances, 200 Hz, 3 ms}).

**Backprojection learning rate and decay.** PAL's drift ⟨ξ x^HP⟩ ∝ σ² G grows by c⁻¹ = σ_s² G_s / (σ_r² G_r)
from the rate configuration (σ_r = plasticity.sigma, G_r with its τ_ξ, τ_HP, τ_syn) to the spiking one, so
η_bw is multiplied by c (besides 1/k) and α divided by c: the stationary B* = ⟨ξ x^HP⟩/α and the averaging time
1/(η_bw α) (scaled by k) are those of the rate configuration. The mean-field configuration carries the effective
values, so its own c is 1.

**Forward plasticity.** Urbanczik2014's spike-based estimator replaces φ(ŭ) by S(t)/ν_max; the presynaptic factor
is the trace x. PAL's optional low-pass of the increments (plasticity.tau_lo > 0) filters the spike-based
increment with τ_LO·k before it is applied; spike noise in the increments is then averaged over τ_LO·k (a
low-pass of the increments does not shrink the random walk of W itself: its integral is unchanged).

**What spike noise costs, and how the model files choose ν_max, τ_s, σ (measured).**

- *PAL's estimator.* ⟨ξ x^HP⟩ is estimated against the shot noise of x^HP, whose low-frequency power is
  ∝ φ/ν_max, so the amplitude SNR of B grows like σ √ν_max · √(1/(η_bw α)). The derived σ above keeps σ²ν_max
  fixed, so raising ν_max alone does not help; the Fig 3 model (models/spiking_backprojections.yaml) sets
  σ = 4, ν_max = 500 Hz and doubles the averaging time: final ∠(B, Wᵀ) 15–23° in every hidden layer after
  1000 s, against 41–49° with the defaults after 500 s, while the rate mean field of the defaults reaches
  11–16° (so the gap was estimator noise, not PAL's fixed point).
- *Forward learning: an implicit ridge.* The trace fluctuates with variance Var(x) = φ/(2 ν_max τ_s), and the
  dendritic prediction φ(v̂) carries the same fluctuation with a larger gain than the nudged φ(ŭ) (output:
  v̂ = g_bas v_bas/(g_l+g_bas), ŭ = (1−ρ) v̂ + ρ u_tgt with ρ = g_ntgt/(g_l+g_bas+g_ntgt)), so
  E[(S/ν_max − φ(v̂)) x_j] = (rate rule) − ρ φ' (g_bas/(g_l+g_bas)) w_j Var(x_j) + …: a weight decay ∝ Var(x)
  with the same factor ρ as the error signal, i.e. a ridge of strength ≈ Var(x) that no choice of g_ntgt or η
  removes. A read-out can only use feature directions whose variance across inputs exceeds it. In the 9-30-3
  Bars task the discriminating direction of random logistic hidden features has variance ≈ 0.01 against
  Var(x) ≈ 0.4 at (200 Hz, 3 ms) and 0.025 at (500 Hz, 20 ms); hidden cells have no such decay (their ŭ and v̂
  share the basal gain), so their weights random-walk with the spike noise instead. The learning models therefore
  use ν_max = 500 Hz and τ_s = 20 ms (dendritic/NMDA-like filtering; presentations of 10 τ_s = 200 ms): enough for
  the 1-1-1 teacher (models/spiking_teacher_1-1-1_*.yaml), not yet for Bars, whose mean field learns (100 %) while
  the spiking run stays at 38–100 % per seed even with τ_s = 50 ms, so the ridge is not the whole story (see
  models/spiking_bars_*.yaml). The ridge is the errors-in-variables bias of any delta rule whose input is read
  with noise in both the prediction and the factor; ``spiking.pre_signal = 'rate'`` makes the factor the trace's
  expectation x_r (τ_s ẋ_r = φ(ŭ_pre) − x_r, :func:`neurofa.spiking.equations.expected_trace`), whose shot noise
  x − x_r is independent of x_r, so the bias is gone and the mean field is unchanged. Measured (a 3-6-2 teacher,
  output rule only, tests/test_spiking.py): the learned ‖W₂‖ is 1.38 at 100 Hz and 1.58 at 400 Hz with the trace,
  1.687 and 1.689 with x_r. Offline, on Yin-Yang features of a trained rate model, the output rule's fixed point
  with this ridge loses 0.7 / 2.5 / 4.9 / 15 points of test accuracy at ν_max τ_s = 40 / 20 / 10 / 5 (96.9 %
  without).
- *Forward learning: the postsynaptic count noise* (what limited Yin-Yang). Over a presentation T the spike-based
  estimator's ∫(S/ν_max − φ(ŭ)) dt has variance φ T/ν_max, against a drift φ'·(ŭ − v̂)·T. In hidden cells
  ŭ − v̂ = g_api v_api/(g_l + g_bas + g_api) is the attenuated apical error, so the per-presentation SNR
  φ' (g_api/g_tot) |v_api| √(ν_max T/φ) is ≪ 1, and the hidden learning rate that the rate model needs (200× the
  output's in Yin-Yang) turns each presentation's update into a random step larger than its drift. Measured on
  Yin-Yang 4-30-3 FA, one epoch, seed 0 (test accuracy): η_fw [40, 0.2] mean field 79.9 %, spikes 34–55 %;
  η_fw [10, 0.2] mean field 68.8 %, spikes 55.3 %, the same at ν_max = 5000 Hz (count noise / 10) 74.3 %.
  ``spiking.post_signal = 'rate'`` replaces S/ν_max by its expectation φ(ŭ): a voltage-based Urbanczik–Senn rule
  (the synapse reads the somatic potential instead of back-propagating spikes, as voltage-based rules such as
  Clopath2010 do). The expectation, and so the mean field, is unchanged, and the spiking run then matches it:
  79.4 % and 75.5 % in the two settings above. Cells still spike, traces still carry shot noise (the ridge above
  and the apical fluctuations remain); only the postsynaptic count noise leaves the weight update.
- *Input coding.* A Poisson input trace has SD √(x/(2 ν_max τ_s)) = 0.16 at x = ½ (500 Hz, 20 ms), larger than
  the Yin-Yang dots (radius 0.1 in the unit square). ``spiking.input_spikes = 'regular'`` encodes each input with
  an integrate-and-fire phase (:func:`neurofa.spiking.equations.input_equations`): the same rate, a ripple SD of
  1/(√12 ν_max τ_s) = 0.03. Measured with the rate estimator (η_fw [40, 0.2], one epoch): Poisson inputs 73.6 %,
  regular 79.4 %.
- *Trace lag at input switches, and the rate model's time step.* After each switch the traces need a few τ_s to
  follow the new input while an unfiltered target switches at once, so the rules pair the new target with the old
  input's traces. ``simulation.filter_target`` passes the target through the same trace filter (a teacher whose
  signal arrives through synapses), so target and inputs switch together. Measured on the mean field of
  models/spiking_yinyang_fa.yaml (seed 0, 10 epochs; :func:`mean_field_config` with a coarser dt): t_pres 200 ms
  with the filtered target 94.3 % at dt 2 ms, 92.2 % at dt 1 ms, 91.7 % at dt 0.5 ms (seeds 1, 2 at dt 1 ms:
  92.7, 93.6 %); unfiltered, t_pres 400 ms, 87.4 % at dt 4 ms.
  Caution: Yin-Yang's learning rates (η_hidden = 160/ms × f(t) at t_pres = 2 ms in the rate model) move the hidden
  weights so much within one presentation that the rate model is not converged in dt: models/yinyang_fa.yaml,
  seed 0, 10 epochs, no filter reaches 93.6 % at its dt = 0.1 ms (20 steps per presentation) but 75.5 % at
  dt = 0.02 ms, and 87.4 % with τ_syn = 0.1 ms, which is the t_pres 400 ms mean field above in rescaled time. The
  spiking network (2000 steps per presentation) lives in the continuous-time limit, so its reference is the
  fine-dt mean field, not the rate model's numbers. Spiking FA, seed 0, 10 epochs, t_pres 200 ms: filtered target 84.1 %
  (unfiltered 83.9 %), at ν_max 2000 Hz 86.9 % (unfiltered 86.2 %); t_pres 400 ms unfiltered 84.5 %. Halving τ_s
  instead doubles the trace variance (spiking FA, 3 seeds, 20 epochs: τ_s 10 ms 82.4 % against 85.2 % at 20 ms).
  With the rate factors on both sides and the filtered target (3 seeds, 10 epochs): η_fw [160, 0.8] fa 87.8 %,
  pal 89.5 %; the continuous-limit mean field prefers a faster hidden layer (dt 1 ms, seed 0: η_hidden 80 / 160 /
  320 → 89.1 / 92.2 / 93.9 %), and with [320, 0.8] (models/spiking_yinyang_*.yaml) fa 90.4 %, pal 91.5 %.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from neurofa.config import Config, ConfigError, layer_values

__all__ = [
    "N_SPIKES",
    "SETTLE",
    "TAU_XI_PER_TAU_S",
    "HP_PER_T_PRES",
    "SPIKING_ACTIVATIONS",
    "EffectiveParameters",
    "effective_parameters",
    "mean_field_config",
    "derived_sigma",
    "noise_gain",
    "check_spiking_config",
]

N_SPIKES = 5.0
SETTLE = 10.0
TAU_XI_PER_TAU_S = 2.0
HP_PER_T_PRES = 5.0
SPIKING_ACTIVATIONS = ("logistic", "relu", "softplus")


@dataclass(frozen=True)
class EffectiveParameters:
    """The numbers a spiking run actually uses (times in ms, rates ``nu_max`` in Hz, learning rates in 1/ms)."""

    dt: float
    t_pres: float
    time_scale: float
    duration: float
    record_interval: float
    test_interval: float
    nu_max: float
    tau_s: float
    tau_xi: float
    tau_hp: float
    sigma: float
    tau_lo: float
    alpha: float
    eta_decay: float
    eta_fw: tuple[float, ...]
    eta_ip: tuple[float, ...]
    eta_pi: tuple[float, ...]
    eta_bw: tuple[float, ...]


def _round_to(value: float, step: float) -> float:
    """``value`` rounded to a positive whole multiple of ``step``."""
    return max(1, round(value / step)) * step


def noise_gain(tau_xi: float, tau_s: float, tau_hp: float) -> float:
    r"""Fraction G of PAL's noise covariance that survives two trace filters τ_s and the high-pass τ_HP
    (module docstring): G = (τ_ξ/(τ_ξ+τ_s))² · τ_HP/(τ_HP+τ_ξ)."""
    return (tau_xi / (tau_xi + tau_s)) ** 2 * tau_hp / (tau_hp + tau_xi)


def derived_sigma(cfg: Config, nu_max_hz: float, tau_s: float) -> float:
    r"""σ with τ_P g_api σ/√2 = √(1/(4 ν_max τ_s)) (module docstring); ν_max in Hz, τ_s in ms."""
    g = cfg.conductances
    if g.g_api == 0:
        return 0.0
    tau_p = 1.0 / (g.g_l + g.g_bas + g.g_api)
    nu = nu_max_hz / 1000.0  # per ms
    return math.sqrt(2.0) * math.sqrt(1.0 / (4.0 * nu * tau_s)) / (tau_p * g.g_api)


def check_spiking_config(cfg: Config) -> None:
    """Backend-specific validation; raises :class:`ConfigError` naming the key and the allowed values."""
    if cfg.model != "microcircuit":
        raise ConfigError(f"model = {cfg.model!r} is not allowed for the spiking backend; allowed: microcircuit")
    if cfg.network.activation not in SPIKING_ACTIVATIONS:
        raise ConfigError(
            f"network.activation = {cfg.network.activation!r} is not allowed for the spiking backend (rates must be "
            f"≥ 0); allowed: {', '.join(SPIKING_ACTIVATIONS)}"
        )
    if cfg.network.output_linear:
        raise ConfigError(
            "network.output_linear = True is not allowed for the spiking backend (a linear output rate can be "
            "negative); allowed: false"
        )
    if cfg.task.name in ("backprojection", "teacher") and cfg.task.input_low < 0:
        raise ConfigError(
            f"task.input_low = {cfg.task.input_low!r} is invalid for the spiking backend: input rates ν_max·x need "
            "x ≥ 0"
        )
    sp = cfg.spiking
    t_pres = sp.t_pres if sp.t_pres > 0 else None
    if t_pres is not None and t_pres < sp.dt:
        raise ConfigError(f"spiking.t_pres = {sp.t_pres!r} is invalid: must be ≥ spiking.dt = {sp.dt}")
    if sp.nu_max * sp.dt / 1000.0 > 0.5:
        raise ConfigError(
            f"spiking.nu_max = {sp.nu_max!r} is invalid with spiking.dt = {sp.dt}: ν_max·dt must be ≤ 0.5 "
            "(Bernoulli approximation of the Poisson process)"
        )
    if sp.tau_s < sp.dt:
        raise ConfigError(f"spiking.tau_s = {sp.tau_s!r} is invalid: must be ≥ spiking.dt = {sp.dt}")
    if sp.threads != 1:
        raise ConfigError(
            f"spiking.threads = {sp.threads!r} is not allowed; allowed: 1 (run seeds in parallel instead; "
            "oversubscribed OpenMP is 10–100× slower)"
        )


def effective_parameters(cfg: Config) -> EffectiveParameters:
    """The spiking run's dt, presentation time, filters, noise and learning rates (module docstring)."""
    check_spiking_config(cfg)
    sp, p, sim = cfg.spiking, cfg.plasticity, cfg.simulation
    dt = sp.dt
    nu_per_ms = sp.nu_max / 1000.0
    if sp.t_pres > 0:
        t_pres = _round_to(sp.t_pres, dt)
    else:
        t_pres = _round_to(max(cfg.task.t_pres, 2.0 * N_SPIKES / nu_per_ms, SETTLE * sp.tau_s), dt)
    k = t_pres / cfg.task.t_pres
    duration = _round_to(sim.duration * k, t_pres)
    record_interval = _round_to(sim.record_interval * k, dt)
    test_interval = _round_to(sim.test_interval * k, t_pres) if sim.test_interval > 0 else 0.0
    tau_xi = sp.tau_xi if sp.tau_xi > 0 else TAU_XI_PER_TAU_S * sp.tau_s
    tau_hp = sp.tau_hp if sp.tau_hp > 0 else max(t_pres / HP_PER_T_PRES, tau_xi)
    sigma = sp.sigma if sp.sigma > 0 else derived_sigma(cfg, sp.nu_max, sp.tau_s)
    n_w = len(cfg.network.layers) - 1
    eta_fw = [e / k for e in layer_values(p.eta_fw, n_w)]
    if not p.learn_forward:
        eta_fw = [0.0] * n_w
    elif p.freeze_hidden:
        eta_fw = [0.0] * (n_w - 1) + eta_fw[-1:]
    eta_ip = [e / k if p.learn_lateral else 0.0 for e in layer_values(p.eta_ip, n_w - 1)]
    eta_pi = [e / k if p.learn_lateral else 0.0 for e in layer_values(p.eta_pi, n_w - 1)]
    eta_bw = [e / k if (p.learn_feedback and p.feedback == "pal") else 0.0 for e in layer_values(p.eta_bw, n_w - 1)]
    if p.feedback == "pal":
        g_rate = noise_gain(p.tau_xi, cfg.simulation.tau_syn, p.tau_hp)
        g_spk = noise_gain(tau_xi, sp.tau_s, tau_hp)
        c = (p.sigma**2 * g_rate) / (sigma**2 * g_spk) if sigma > 0 else 0.0
    else:
        sigma, c = 0.0, 1.0
    alpha = p.alpha / c if c > 0 else p.alpha
    eta_bw = [e * c for e in eta_bw]
    return EffectiveParameters(
        dt=dt, t_pres=t_pres, time_scale=k, duration=duration, record_interval=record_interval,
        test_interval=test_interval, nu_max=sp.nu_max, tau_s=sp.tau_s, tau_xi=tau_xi, tau_hp=tau_hp, sigma=sigma,
        tau_lo=p.tau_lo * k, alpha=alpha, eta_decay=p.eta_decay * k, eta_fw=tuple(eta_fw), eta_ip=tuple(eta_ip),
        eta_pi=tuple(eta_pi), eta_bw=tuple(eta_bw),
    )


def mean_field_config(cfg: Config) -> Config:
    """The rate configuration that is the exact mean field of the spiking configuration ``cfg``.

    simulation.dt = spiking dt, task.t_pres = effective t_pres, simulation.tau_syn = τ_s, simulation.scheme =
    'instant', duration/record/test intervals scaled by k, PAL's τ_ξ, τ_HP, σ and τ_LO the effective values and the
    learning rates the effective (rescaled) ones. Feeding the result to the rate backend simulates E[x] of the
    spiking network (up to the one-dt latency per layer documented in :mod:`neurofa.spiking.equations`).
    """
    eff = effective_parameters(cfg)
    p = cfg.plasticity
    plasticity = dataclasses.replace(
        p,
        eta_fw=[e / eff.time_scale for e in layer_values(p.eta_fw, len(eff.eta_fw))],
        eta_ip=[e / eff.time_scale for e in layer_values(p.eta_ip, len(eff.eta_ip))],
        eta_pi=[e / eff.time_scale for e in layer_values(p.eta_pi, len(eff.eta_pi))],
        eta_bw=list(eff.eta_bw) if p.feedback == "pal" else layer_values(p.eta_bw, len(eff.eta_bw)),
        alpha=eff.alpha,
        sigma=eff.sigma if p.feedback == "pal" else p.sigma,
        tau_xi=eff.tau_xi, tau_hp=eff.tau_hp, tau_lo=eff.tau_lo, eta_decay=eff.eta_decay,
    )
    simulation = dataclasses.replace(
        cfg.simulation, dt=eff.dt, duration=eff.duration, record_interval=eff.record_interval,
        test_interval=eff.test_interval, tau_syn=eff.tau_s, scheme="instant", prospective=True,
    )
    task = dataclasses.replace(cfg.task, t_pres=eff.t_pres)
    spiking = dataclasses.replace(cfg.spiking, t_pres=eff.t_pres, tau_xi=eff.tau_xi, tau_hp=eff.tau_hp,
                                  sigma=eff.sigma if eff.sigma > 0 else cfg.spiking.sigma)
    return dataclasses.replace(cfg, plasticity=plasticity, simulation=simulation, task=task, spiking=spiking)
