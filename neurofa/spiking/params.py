r"""The spiking network's time scale and its exact rate mean field (pure Python, no Brian2).

The spiking model is the rate microcircuit with Poisson spikes (``docs/science.md`` §3). Its time scales are set by
biology, not by the rate model's numerics: a cell fires at most ν_max (100–500 Hz), each spike adds 1/(ν_max τ_s) to
an exponential synaptic trace x (E[x] = φ(ŭ)), and a presentation must last long enough for several spikes.

:func:`effective_parameters` gives the spiking run's timing and PAL's noise process (§3.4):

- presentation time t_pres = max(task.t_pres, 2 ``N_SPIKES`` / ν_max, ``SETTLE`` τ_s) unless ``spiking.t_pres`` is
  given; every other time of the configuration is multiplied by k = t_pres / task.t_pres and every learning rate
  divided by it, so the weight change per presentation is unchanged;
- the apical noise's τ_ξ = ``TAU_XI_PER_TAU_S`` τ_s and the high-pass τ_HP = t_pres / ``HP_PER_T_PRES`` (never below
  τ_ξ), and, for a rule that injects noise, σ from the shot noise of one trace
  (:func:`neurofa.model.rules.pal.derived_sigma`); each ``spiking.*`` value > 0 overrides its derived value.

:func:`mean_field_config` returns the rate configuration whose dynamics are the exact mean field of the spiking
configuration: the spiking dt, presentation time and durations, ``simulation.tau_syn`` = τ_s, the ``instant``
scheme, and every rule's parameters mapped to the spiking time scale by the rule itself
(:meth:`neurofa.model.rule.Rule.mean_field`). The spiking backend simulates the model description of that same
configuration, so the two backends differ only by spike noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from neurofa.circuit import circuit_task
from neurofa.config import Config, ConfigError, choice_error, register_check
from neurofa.model import TimeScale, compile_model
from neurofa.model.rule import feedback_rule
from neurofa.model.rules.pal import derived_sigma
from neurofa.spikes import window_bounds
from neurofa.tasks import task_spec

#: what ``spiking.record_spikes`` may name: population kinds, or all of them
RECORDABLE = ("input", "hidden", "interneuron", "output", "all")

__all__ = [
    "RECORDABLE",
    "N_SPIKES",
    "SETTLE",
    "TAU_XI_PER_TAU_S",
    "HP_PER_T_PRES",
    "SPIKING_ACTIVATIONS",
    "EffectiveParameters",
    "effective_parameters",
    "mean_field_config",
    "check_spiking_config",
]

N_SPIKES = 5.0
SETTLE = 10.0
TAU_XI_PER_TAU_S = 2.0
HP_PER_T_PRES = 5.0
SPIKING_ACTIVATIONS = ("logistic", "relu", "softplus")


@dataclass(frozen=True)
class EffectiveParameters:
    """The timing and noise a spiking run uses (times in ms, ``nu_max`` in Hz); its learning rates are the model
    description's of :func:`mean_field_config`."""

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
    eta_decay: float
    checkpoint_interval: float = 0.0

    @property
    def scale(self) -> TimeScale:
        return TimeScale(k=self.time_scale, tau_s=self.tau_s, tau_xi=self.tau_xi, tau_hp=self.tau_hp,
                         sigma=self.sigma)


def _round_to(value: float, step: float) -> float:
    """``value`` rounded to a positive whole multiple of ``step``."""
    return max(1, round(value / step)) * step


def effective_parameters(cfg: Config) -> EffectiveParameters:
    """The spiking run's dt, presentation time, durations, filters and noise (module docstring)."""
    sp, sim = cfg.spiking, cfg.simulation
    dt = sp.dt
    nu_per_ms = sp.nu_max / 1000.0
    if sp.t_pres > 0:
        t_pres = _round_to(sp.t_pres, dt)
    else:
        t_pres = _round_to(max(cfg.task.t_pres, 2.0 * N_SPIKES / nu_per_ms, SETTLE * sp.tau_s), dt)
    k = t_pres / cfg.task.t_pres
    tau_xi = sp.tau_xi if sp.tau_xi > 0 else TAU_XI_PER_TAU_S * sp.tau_s
    tau_hp = sp.tau_hp if sp.tau_hp > 0 else max(t_pres / HP_PER_T_PRES, tau_xi)
    sigma = 0.0
    if feedback_rule(cfg.plasticity.feedback).injects_noise:
        sigma = sp.sigma if sp.sigma > 0 else derived_sigma(cfg, sp.nu_max, sp.tau_s)
    return EffectiveParameters(
        dt=dt, t_pres=t_pres, time_scale=k, duration=_round_to(sim.duration * k, t_pres),
        record_interval=_round_to(sim.record_interval * k, dt),
        test_interval=_round_to(sim.test_interval * k, t_pres) if sim.test_interval > 0 else 0.0,
        nu_max=sp.nu_max, tau_s=sp.tau_s, tau_xi=tau_xi, tau_hp=tau_hp, sigma=sigma,
        eta_decay=cfg.plasticity.eta_decay * k,
        checkpoint_interval=sim.checkpoint_interval * k,
    )


def mean_field_config(cfg: Config) -> Config:
    """The rate configuration that is the exact mean field of the spiking configuration ``cfg``.

    simulation.dt = spiking dt, task.t_pres = effective t_pres, simulation.tau_syn = τ_s, simulation.scheme =
    'instant', duration/record/test intervals scaled by k, PAL's τ_ξ, τ_HP the effective values, the annealing time
    scaled by k, and every rule's parameters mapped by the rule (:meth:`neurofa.model.rule.Rule.mean_field`).
    Feeding the result to the rate backend simulates E[x] of the spiking network (up to the one-dt latency per
    layer of Brian2's schedule, ``docs/science.md`` §3.3).
    """
    eff = effective_parameters(cfg)
    updates: dict[str, Any] = {"tau_xi": eff.tau_xi, "tau_hp": eff.tau_hp, "eta_decay": eff.eta_decay}
    for rule in dict.fromkeys(type(p.rule) for p in compile_model(cfg)):
        updates.update(rule.mean_field(cfg, eff.scale))
    simulation = dataclasses.replace(
        cfg.simulation, dt=eff.dt, duration=eff.duration, record_interval=eff.record_interval,
        test_interval=eff.test_interval, tau_syn=eff.tau_s, scheme="instant", prospective=True,
        checkpoint_interval=eff.checkpoint_interval,
    )
    task = dataclasses.replace(cfg.task, t_pres=eff.t_pres)
    spiking = dataclasses.replace(cfg.spiking, t_pres=eff.t_pres, tau_xi=eff.tau_xi, tau_hp=eff.tau_hp,
                                  sigma=eff.sigma if eff.sigma > 0 else cfg.spiking.sigma)
    return dataclasses.replace(cfg, plasticity=dataclasses.replace(cfg.plasticity, **updates),
                               simulation=simulation, task=task, spiking=spiking)


@register_check("backend:spiking")
def check_spiking_config(cfg: Config, where: str = "") -> None:
    """The spiking backend's own checks (run before it simulates); raises :class:`ConfigError` naming the key."""
    if cfg.model != "microcircuit":
        raise ConfigError(f"{where}model = {cfg.model!r} is not allowed for the spiking backend; allowed: "
                          "microcircuit")
    if cfg.network.activation not in SPIKING_ACTIVATIONS:
        raise ConfigError(
            f"{where}network.activation = {cfg.network.activation!r} is not allowed for the spiking backend (rates "
            f"must be ≥ 0); allowed: {', '.join(SPIKING_ACTIVATIONS)}"
        )
    if cfg.network.output_linear:
        raise ConfigError(
            f"{where}network.output_linear = True is not allowed for the spiking backend (a linear output rate can "
            "be negative); allowed: false"
        )
    if task_spec(cfg.task.name).synthetic and cfg.task.input_low < 0:
        raise ConfigError(
            f"{where}task.input_low = {cfg.task.input_low!r} is invalid for the spiking backend: input rates "
            "ν_max·x need x ≥ 0"
        )
    sp = cfg.spiking
    if 0 < sp.t_pres < sp.dt:
        raise ConfigError(f"{where}spiking.t_pres = {sp.t_pres!r} is invalid: must be ≥ spiking.dt = {sp.dt}")
    if sp.nu_max * sp.dt / 1000.0 > 0.5:
        raise ConfigError(
            f"{where}spiking.nu_max = {sp.nu_max!r} is invalid with spiking.dt = {sp.dt}: ν_max·dt must be ≤ 0.5 "
            "(Bernoulli approximation of the Poisson process)"
        )
    if sp.tau_s < sp.dt:
        raise ConfigError(f"{where}spiking.tau_s = {sp.tau_s!r} is invalid: must be ≥ spiking.dt = {sp.dt}")
    if cfg.simulation.checkpoint_interval > 0 and sp.device != "cpp_standalone":
        raise ConfigError(
            f"{where}simulation.checkpoint_interval = {cfg.simulation.checkpoint_interval!r} is not allowed with "
            f"spiking.device = {sp.device!r}; allowed: spiking.device = 'cpp_standalone' (or checkpoint_interval 0)"
        )
    if cfg.network.population > 1 and sp.record_spikes:
        raise ConfigError(
            f"{where}network.population = {cfg.network.population!r} is not allowed with spiking.record_spikes = "
            f"{sp.record_spikes!r}: a population's cells are simulated as spike counts, not as spike times; allowed: "
            "network.population 1, or spiking.record_spikes []"
        )
    if sp.threads > 1 and sp.device != "cpp_standalone":
        raise ConfigError(
            f"{where}spiking.threads = {sp.threads!r} is not allowed with spiking.device = {sp.device!r}; allowed: "
            "spiking.device = 'cpp_standalone', or threads 1"
        )


@register_check("backend:spiking")
def check_spike_recording(cfg: Config, where: str = "") -> None:
    """``spiking.record_spikes`` names population kinds (or ``all``); each of ``spiking.record_spikes_windows`` is
    [start, stop] ms with start < stop inside the run (negative values count from the end of training)."""
    sp = cfg.spiking
    for i, kind in enumerate(sp.record_spikes):
        if kind not in RECORDABLE:
            raise choice_error(where, f"spiking.record_spikes[{i}]", kind, RECORDABLE)
    if sp.record_spikes_windows and not sp.record_spikes:
        raise ConfigError(f"{where}spiking.record_spikes_windows = {sp.record_spikes_windows!r} is given but "
                          "spiking.record_spikes is empty: name the populations to record (e.g. [all])")
    if not sp.record_spikes_windows:
        return
    eff = effective_parameters(cfg)
    data = circuit_task(cfg, 0)
    n_test = 0 if data.x_test is None or data.y_train is None else len(data.x_test)
    train, run = eff.duration, eff.duration + n_test * eff.t_pres
    for i, window in enumerate(sp.record_spikes_windows):
        key = f"{where}spiking.record_spikes_windows[{i}] = {window!r}"
        if len(window) != 2:
            raise ConfigError(f"{key} is invalid: give [start, stop] in ms")
        start, stop = window_bounds(window, train)
        if not (0 <= start < stop <= run):
            raise ConfigError(f"{key} is invalid: needs 0 ≤ start < stop ≤ {run:g} ms (the run; training ends at "
                              f"{train:g} ms, negative values count back from there)")
