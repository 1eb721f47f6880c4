"""Validation: the spiking microcircuit checked against its rate mean field, with numbers and a verdict.

The spiking model is the rate model with Poisson spikes (``docs/science.md`` §3). :func:`compare` runs a
configuration with the spiking backend and the rate backend configured as its exact mean field
(:func:`neurofa.spiking.params.mean_field_config`: same synaptic filter τ_s, time step, presentation time and PAL
time constants; ``simulation.scheme = 'instant'``), from the same seeds, initial weights and input stream
(:mod:`neurofa.circuit`), so that the two differ only by spike noise. Both interpret one model description. It
judges these levels:

- **dynamics** (plasticity off, PAL noise off so that the rate reference is deterministic): time averages of every
  neuron's rate and basal potential over the run (after the first record window), spiking against rate across
  seeds × neurons — Pearson correlation ≥
  ``validation.min_correlation`` and relative RMS error ≤ ``validation.max_rel_rms`` (see
  :func:`neurofa.validation_stats.agreement`). Apical potentials are reported but not judged: in the
  self-predicting state their rate-model value is ≈ 0, so a relative error has no scale.
- **convergence** (with ``scales``): the dynamics level rerun with ν_max multiplied by each scale. Spike noise
  falls like 1/√(ν_max T), so the relative RMS error must fall with a fitted log–log slope of
  ``validation.slope ± validation.slope_tolerance`` (:func:`neurofa.validation_stats.convergence_slope`).
- **populations** (with ``populations``): the same fit over the cells per rate unit N (``network.population``),
  which leaves the mean field unchanged and shrinks the spike noise like 1/√N. For models that learn, also
  **populations_learning**: the learning runs at every N, and per seed the RMS difference of the weight
  trajectories and the gaps of the final angle and accuracy against the mean field, each fitted as ∝ N^(−s)
  (:func:`population_learning_level`).
- **learning** (plasticity on): the spiking angle curves ∠(B_ℓ, W_{ℓ+1}ᵀ) (mean over seeds) stay inside the rate
  model's seed band, mean ± ``validation.band_sd`` SD or ± ``validation.angle_tolerance`` degrees, whichever is
  wider; the weight trajectories differ by at most ``validation.weight_tolerance`` of their range (RMS).
- **task** (tasks with targets): the spiking runs' final test accuracy (or final loss) lies inside the rate
  model's band over seeds (± 2 accuracy points or ± ``max_rel_rms`` of the loss at least).

The report (``summary.json``) has flat keys ``<level>_<measure>``, a boolean ``<level>_passed`` per level with the
tolerances used (``<level>_tolerance``), and ``passed`` for all levels together.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofa.config import Config, ConfigError, apply_overrides, check_backend, dump_config, load_config, to_dict
from neurofa.model import compile_model
from neurofa.model.rule import feedback_rule
from neurofa.plotting import comparison_figures
from neurofa.results import NETCDF_ENGINE, atomic_write, atomic_write_text, to_jsonable
from neurofa.rundir import RunDirectory
from neurofa.runner import resolve_seeds, run
from neurofa.spiking.params import effective_parameters, mean_field_config
from neurofa.tasks import task_spec
from neurofa.timegrid import on_rate_grid
from neurofa.validation_stats import agreement, band_check, convergence_slope

__all__ = [
    "Report",
    "compare",
    "dynamics_level",
    "convergence_level",
    "learning_gaps",
    "population_learning_level",
    "population_config",
    "learning_level",
    "task_level",
    "dynamics_config",
    "rate_errors",
    "time_averaged",
    "DETAIL_VARIABLES",
]

DETAIL_VARIABLES = ("rate_pyr", "rate_int", "v_bas", "v_api")
JUDGED = ("rate_pyr", "rate_int", "v_bas")
ACCURACY_TOLERANCE = 0.02


@dataclass
class Report:
    """The outcome of :func:`compare`: flat ``summary`` keys, the verdict and the data behind it."""

    summary: dict[str, Any]
    passed: bool
    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    config_text: str = ""

    def save(self, directory: str | Path, plots: bool = True, overwrite: bool = False) -> Path:
        """Write ``results.nc`` (every level, both backends), ``config.yaml``, figures and, last, ``summary.json``
        into a run directory (:class:`neurofa.rundir.RunDirectory`; an existing run needs ``overwrite``)."""
        rundir = RunDirectory.open(directory, command="compare", overwrite=overwrite, option="directory")
        try:
            return self.write(rundir, plots)
        finally:
            rundir.release()

    def write(self, rundir: RunDirectory, plots: bool = True) -> Path:
        """Write the report into a prepared run directory and mark it complete."""
        directory = rundir.path
        if self.config_text:
            atomic_write_text(directory / "config.yaml", self.config_text)
        merged = combined_dataset(self.datasets)
        atomic_write(directory / "results.nc", lambda p: merged.to_netcdf(p, engine=NETCDF_ENGINE))
        if plots:
            comparison_figures(self.datasets, self.summary, directory / "figures")
        atomic_write_text(directory / "summary.json", json.dumps(to_jsonable(self.summary), indent=2) + "\n")
        rundir.finish()
        return directory


#: the levels whose ``<level>_passed`` verdicts make up the report's verdict (measures within a level, such as
#: ``dynamics_rate_pyr_passed``, are reported but judged through their level)
LEVELS = ("dynamics", "convergence", "populations", "learning", "populations_learning", "task")


# ----------------------------------------------------------------------------------------------------------------
# the levels: pure functions of two datasets


def time_averaged(values: np.ndarray) -> np.ndarray:
    """Per-neuron time averages (seed, unit) of window means (seed, time, unit), without the first window, which
    holds the settling from the initial state."""
    return np.nanmean(values[:, 1:], axis=1) if values.shape[1] > 1 else values[:, 0]


def dynamics_level(rate: xr.Dataset, spiking: xr.Dataset, cfg: Config) -> dict[str, Any]:
    """Per-neuron time-averaged rates and dendritic potentials, spiking against rate (across seeds × neurons)."""
    v = cfg.validation
    out: dict[str, Any] = {}
    passed = True
    for name in DETAIL_VARIABLES:
        if name not in rate or name not in spiking:
            continue
        ref, tst = (time_averaged(a) for a in on_rate_grid(rate, spiking, name))
        a = agreement(ref, tst)
        out[f"dynamics_{name}_correlation"] = a.correlation
        if name in JUDGED:
            out[f"dynamics_{name}_rel_rms"] = a.rel_rms
            ok = bool(a.correlation >= v.min_correlation and a.rel_rms <= v.max_rel_rms)
            out[f"dynamics_{name}_passed"] = ok
            passed &= ok
        else:  # the apical potential: ≈ 0 in the rate model, so absolute RMS values instead of a relative error
            out[f"dynamics_{name}_rms_rate"] = float(np.sqrt(np.nanmean(ref**2)))
            out[f"dynamics_{name}_rms_spiking"] = float(np.sqrt(np.nanmean(tst**2)))
    if not any(f"dynamics_{n}_passed" in out for n in JUDGED):
        raise ValueError("no per-neuron variables to compare (set simulation.record_detail)")
    out["dynamics_passed"] = passed
    out["dynamics_tolerance"] = {"min_correlation": v.min_correlation, "max_rel_rms": v.max_rel_rms}
    return out


def rate_errors(rate: xr.Dataset, spiking: xr.Dataset) -> list[float]:
    """Relative RMS error of the per-neuron time-averaged pyramidal rates, one value per seed."""
    ref, tst = (time_averaged(a) for a in on_rate_grid(rate, spiking, "rate_pyr"))
    return [agreement(ref[k], tst[k]).rel_rms for k in range(ref.shape[0])]


def convergence_level(scales: Sequence[float], errors: np.ndarray, cfg: Config,
                      level: str = "convergence") -> dict[str, Any]:
    """Fit error ∝ scale^(−s) over ``errors`` (n_scales, n_seeds) and judge s against ``validation.slope``.

    ``level`` names the axis: ``convergence`` (ν_max multiplied by each scale) or ``populations`` (cells per
    unit, ``network.population``); both shrink the spike noise of the same mean field by 1/√scale."""
    v = cfg.validation
    fit = convergence_slope(np.asarray(scales, dtype=float), np.asarray(errors, dtype=float))
    return {
        f"{level}_scales": [float(s) for s in scales],
        f"{level}_errors": np.asarray(errors, dtype=float).tolist(),
        f"{level}_slope": fit.slope,
        f"{level}_slope_ci": [fit.ci_low, fit.ci_high],
        f"{level}_r2": fit.r2,
        f"{level}_passed": fit.within(v.slope, v.slope_tolerance),
        f"{level}_tolerance": {"slope": v.slope, "slope_tolerance": v.slope_tolerance},
    }


def learning_gaps(rate: xr.Dataset, spiking: xr.Dataset) -> dict[str, list[float]]:
    """Per seed, how far a spiking learning run ends from its mean field (same seed, weights and inputs):

    - ``weights``: the RMS difference of the weight trajectories (W and B together) relative to their range;
    - ``angle``: |final ∠(B, Wᵀ) spiking − rate| in degrees, mean over layers (when angles are recorded);
    - ``accuracy``: |final test accuracy spiking − rate| (tasks with labels).
    """
    out: dict[str, list[float]] = {}
    names = [n for n in ("weights_W", "weights_B") if n in rate and n in spiking]
    if names:
        pairs = [on_rate_grid(rate, spiking, n) for n in names]
        n_seeds = pairs[0][0].shape[0]
        out["weights"] = [_weight_rel_rms(np.concatenate([r[k].ravel() for r, _ in pairs]),
                                          np.concatenate([t[k].ravel() for _, t in pairs])) for k in range(n_seeds)]
    if "angle_B_WT" in rate and "angle_B_WT" in spiking:
        ref, tst = on_rate_grid(rate, spiking, "angle_B_WT")
        out["angle"] = np.nanmean(np.abs(tst[:, -1] - ref[:, -1]).reshape(ref.shape[0], -1), axis=1).tolist()
    if "test_accuracy" in rate and "test_accuracy" in spiking:
        ref_acc = rate["test_accuracy"].values.astype(float).ravel()
        tst_acc = spiking["test_accuracy"].values.astype(float).ravel()
        out["accuracy"] = np.abs(tst_acc - ref_acc).tolist()
    return out


def population_learning_level(sizes: Sequence[int], gaps: Sequence[dict[str, list[float]]]) -> dict[str, Any]:
    """Fit every learning gap (:func:`learning_gaps`, one dict per population size) as gap ∝ N^(−s).

    A measure passes when the gap falls with N at the rate of spike noise or faster: the 95 % interval of s lies
    above 0 and reaches 0.5 (it includes 0.5 or lies above it). The level passes when the weight trajectories'
    measure passes (the one every learning run records); the others are reported with their fits."""
    out: dict[str, Any] = {"populations_learning_sizes": [int(n) for n in sizes]}
    verdicts: dict[str, bool] = {}
    for measure in gaps[0]:
        values = np.array([g[measure] for g in gaps], dtype=float)
        out[f"populations_learning_{measure}"] = values.tolist()
        if not np.isfinite(np.log(values)).any(axis=1).all():  # a size with no nonzero gap: nothing to fit
            continue
        fit = convergence_slope(np.asarray(sizes, dtype=float), values)
        ok = bool(fit.ci_low > 0 and fit.ci_high >= 0.5)
        out[f"populations_learning_{measure}_slope"] = fit.slope
        out[f"populations_learning_{measure}_slope_ci"] = [fit.ci_low, fit.ci_high]
        out[f"populations_learning_{measure}_passed"] = ok
        verdicts[measure] = ok
    if "weights" not in verdicts:
        raise ValueError("no weight trajectories to fit against the population size (no learning weights recorded)")
    out["populations_learning_passed"] = verdicts["weights"]
    out["populations_learning_tolerance"] = {"slope_ci_reaches": 0.5, "slope_ci_above": 0.0}
    return out


def _weight_rel_rms(ref: np.ndarray, tst: np.ndarray) -> float:
    """RMS difference of weight trajectories relative to the range the reference weights span."""
    span = float(np.nanmax(ref) - np.nanmin(ref))
    return float(np.sqrt(np.nanmean((tst - ref) ** 2)) / span) if span > 0 else float("nan")


def learning_level(rate: xr.Dataset, spiking: xr.Dataset, cfg: Config) -> dict[str, Any]:
    """Angle curves against the rate seed band, and weight trajectories relative to their range."""
    v = cfg.validation
    out: dict[str, Any] = {}
    passed = True
    if "angle_B_WT" in rate and "angle_B_WT" in spiking:
        ref, tst = on_rate_grid(rate, spiking, "angle_B_WT")
        check = band_check(ref, tst, k_sd=v.band_sd, tolerance=v.angle_tolerance)
        out["learning_angle_fraction_inside"] = check.fraction_inside
        out["learning_angle_max_excess"] = check.max_excess
        out["learning_angle_final_rate"] = np.nanmean(ref[:, -1], axis=0).tolist()
        out["learning_angle_final_spiking"] = np.nanmean(tst[:, -1], axis=0).tolist()
        passed &= check.passed
    for name in ("weights_W", "weights_B"):
        if name in rate and name in spiking:
            ref, tst = on_rate_grid(rate, spiking, name)
            rel = _weight_rel_rms(ref, tst)
            out[f"learning_{name}_rel_rms"] = rel
            passed &= bool(rel <= v.weight_tolerance)
    if len(out) == 0:
        raise ValueError("nothing to compare on the learning level (no angles or weight snapshots recorded)")
    out["learning_passed"] = bool(passed)
    out["learning_tolerance"] = {"band_sd": v.band_sd, "angle_tolerance": v.angle_tolerance,
                                 "weight_tolerance": v.weight_tolerance}
    return out


def task_level(rate: xr.Dataset, spiking: xr.Dataset, cfg: Config) -> dict[str, Any]:
    """Final test accuracy (or final loss) of the spiking seeds against the rate model's band over seeds."""
    v = cfg.validation
    if "test_accuracy" in rate and "test_accuracy" in spiking:
        metric = "test_accuracy"
        ref = rate["test_accuracy"].values.astype(float)
        tst = spiking["test_accuracy"].values.astype(float)
        tolerance = ACCURACY_TOLERANCE
    elif "loss" in rate and "loss" in spiking:
        metric = "loss_final"
        ref = rate["loss"].isel(time=-1).values.astype(float)
        tst = spiking["loss"].isel(time=-1).values.astype(float)
        tolerance = v.max_rel_rms * abs(float(np.nanmean(ref)))
    else:
        return {}
    check = band_check(ref[:, None], tst[:, None], k_sd=v.band_sd, tolerance=tolerance)
    return {
        "task_metric": metric,
        "task_rate_mean": float(np.nanmean(ref)),
        "task_rate_sd": float(np.nanstd(ref)),
        "task_spiking_mean": float(np.nanmean(tst)),
        "task_spiking_per_seed": tst.tolist(),
        "task_passed": check.passed,
        "task_tolerance": {"band_sd": v.band_sd, "half_width": float(check.half_width[0])},
    }


# ----------------------------------------------------------------------------------------------------------------
# configurations of each level


def _replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with fields of its sections replaced, e.g. ``plasticity={'sigma': 0.0}``."""
    changes = {name: dataclasses.replace(getattr(cfg, name), **values) for name, values in sections.items()}
    return dataclasses.replace(cfg, **changes)


def dynamics_config(cfg: Config) -> Config:
    """Plasticity and PAL noise off, per-neuron window means on, ``validation.dynamics_duration`` long.

    Without plasticity a rule may still differ from fixed feedback by its apical noise (PAL), whose realisations
    differ between the backends; the dynamics level therefore runs the rule the feedback rule names as its
    plasticity-free form (:attr:`neurofa.model.rule.FeedbackRule.without_plasticity`: ``fa`` for PAL; same
    weights, no noise).
    """
    feedback = feedback_rule(cfg.plasticity.feedback).without_plasticity
    duration = cfg.validation.dynamics_duration
    t_pres = cfg.task.t_pres
    # at least ~10 windows: the first (settling from the initial state) is dropped from the time averages
    windows = max(1, round(duration / 10.0 / t_pres)) * t_pres
    record = min(cfg.simulation.record_interval, windows)
    return _replace(
        cfg,
        plasticity={"learn_forward": False, "learn_lateral": False, "learn_feedback": False, "sigma": 0.0,
                    "feedback": feedback},
        simulation={"record_detail": True, "duration": duration, "record_interval": record, "test_interval": 0.0},
    )


def learning_config(cfg: Config) -> Config:
    return _replace(cfg, simulation={"record_detail": True})


def scaled_config(cfg: Config, scale: float) -> Config:
    """The spiking configuration with ν_max multiplied by ``scale`` and everything else of its mean field pinned.

    The presentation time, PAL's τ_ξ, τ_HP and σ are derived from ν_max when left at 0
    (:mod:`neurofa.spiking.params`); they are fixed here at their values for scale 1, so that every scale has the
    same mean field and only the spike noise shrinks.
    """
    eff = effective_parameters(cfg)
    pinned = {"t_pres": eff.t_pres, "tau_xi": eff.tau_xi, "tau_hp": eff.tau_hp}
    if eff.sigma > 0:
        pinned["sigma"] = eff.sigma
    return _replace(cfg, spiking={**pinned, "nu_max": cfg.spiking.nu_max * float(scale)})


def population_config(cfg: Config, cells: int) -> Config:
    """The spiking configuration with every rate unit represented by ``cells`` cells: the same mean field
    (nothing the rate model reads depends on the population size), spike noise shrunk by 1/√cells."""
    return _replace(cfg, network={"population": int(cells)})


def _simulate(cfg: Config, backend: str, seeds: list[int], progress: bool) -> xr.Dataset:
    return run(cfg, backend=backend, seeds=seeds, progress=progress).dataset


def compare(
    config: str | Path | dict[str, Any] | Config,
    seeds: int | Iterable[int] | None = None,
    scales: Sequence[float] | None = None,
    out: str | Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    progress: bool = True,
    perturb: dict[str, Any] | list[str] | None = None,
    levels: Sequence[str] = ("dynamics", "learning", "task"),
    populations: Sequence[int] | None = None,
) -> Report:
    """Run ``config`` with both backends and judge how close they are (see the module docstring).

    ``scales`` (e.g. ``[1, 4, 16]``) adds the convergence test in ν_max; ``populations`` (e.g. ``[1, 4, 16]``) the
    convergence test in the cells per unit, on the dynamics level and, for models that learn, on the learning
    level; ``perturb`` applies overrides to the spiking configuration only (a negative control: a wrong apical
    conductance must fail a level); ``out`` writes the report.
    """
    cfg = config if isinstance(config, Config) and not overrides else load_config(config, overrides)
    unknown = sorted(set(levels) - {"dynamics", "learning", "task"})
    if unknown:
        raise ConfigError(f"levels {unknown} are unknown; allowed: dynamics, learning, task")
    seed_list = resolve_seeds(cfg, seeds)
    spiking_cfg = load_config(apply_overrides(to_dict(cfg), perturb)) if perturb else cfg
    if scales is not None:
        scales = [float(s) for s in scales]
        if len(scales) < 2 or any(s <= 0 for s in scales):
            raise ConfigError(f"--scales = {scales} is invalid: give at least two positive scales, e.g. 1,4,16")
        limit = 0.5 / (spiking_cfg.spiking.nu_max * spiking_cfg.spiking.dt / 1000.0)
        if max(scales) > limit:
            top = spiking_cfg.spiking.nu_max * max(scales)
            raise ConfigError(
                f"--scales = {scales} is invalid: ν_max × {max(scales):g} = {top:g} Hz exceeds 0.5/dt at "
                f"spiking.dt = {spiking_cfg.spiking.dt} ms; the largest allowed scale is {limit:g}"
            )
        for sc in scales:
            check_backend(scaled_config(dynamics_config(spiking_cfg), sc), "spiking")
    if populations is not None:
        if (len(set(populations)) < 2 or any(int(n) != n or n < 1 for n in populations)):
            raise ConfigError(f"--populations = {list(populations)} is invalid: give at least two different "
                              "positive whole numbers of cells per unit, e.g. 1,4,16")
        populations = sorted(int(n) for n in populations)
        for n in populations:
            check_backend(population_config(dynamics_config(spiking_cfg), n), "spiking")

    summary: dict[str, Any] = {"seeds": seed_list}
    datasets: dict[str, xr.Dataset] = {}

    def pair(level: str, make: Any, scale: float = 1.0, cells: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
        spk_cfg = make(spiking_cfg) if scale == 1.0 else scaled_config(make(spiking_cfg), scale)
        if cells:
            spk_cfg = population_config(spk_cfg, cells)
        spk = _simulate(spk_cfg, "spiking", seed_list, progress)
        key = f"{level}_rate"
        if key not in datasets:
            datasets[key] = _simulate(mean_field_config(make(cfg)), "rate", seed_list, progress)
        suffix = ("" if scale == 1.0 else f"_x{scale:g}") + (f"_N{cells}" if cells else "")
        datasets[f"{level}_spiking{suffix}"] = spk
        return datasets[key], spk

    if "dynamics" in levels:
        rate, spk = pair("dynamics", dynamics_config)
        summary.update(dynamics_level(rate, spk, cfg))
        if scales:
            errors = []
            for s in scales:
                spk_s = spk if s == 1.0 else pair("dynamics", dynamics_config, s)[1]
                errors.append(rate_errors(rate, spk_s))
            summary.update(convergence_level(scales, np.array(errors), cfg))
        if populations:
            base = spiking_cfg.network.population
            errors = [rate_errors(rate, spk if n == base else pair("dynamics", dynamics_config, cells=n)[1])
                      for n in populations]
            summary.update(convergence_level(populations, np.array(errors), cfg, level="populations"))
    learns = compile_model(cfg).learns
    learned: tuple[xr.Dataset, xr.Dataset] | None = None
    if ("learning" in levels or "task" in levels) and learns:
        rate, spk = learned = pair("learning", learning_config)
        if "learning" in levels:
            summary.update(learning_level(rate, spk, cfg))
        if "task" in levels and task_spec(cfg.task.name).targets:  # no target: no task to judge
            summary.update(task_level(rate, spk, cfg))
    if populations and "learning" in levels and learns:
        base = spiking_cfg.network.population
        gaps = [learning_gaps(*(learned if n == base and learned else pair("learning", learning_config, cells=n)))
                for n in populations]
        summary.update(population_learning_level(populations, gaps))
    verdicts = {level: summary[f"{level}_passed"] for level in LEVELS if f"{level}_passed" in summary}
    passed = bool(verdicts) and all(verdicts.values())
    summary["levels_checked"] = sorted(verdicts)
    summary["passed"] = passed
    text = dump_config(cfg, extra={"command": "compare", "seeds": seed_list, "scales": scales,
                                   "populations": populations,
                                   "perturb": perturb, "mean_field": to_dict(mean_field_config(cfg))})
    report = Report(to_jsonable(summary), passed, datasets, text)
    if out is not None:
        report.save(out)
    return report


def combined_dataset(datasets: dict[str, xr.Dataset]) -> xr.Dataset:
    """All runs of a comparison in one dataset: each variable prefixed with its run (``dynamics_rate_rate_pyr``),
    each run's ``time`` dimension renamed to ``<run>_time`` so runs of different lengths coexist."""
    pieces = []
    for run_name, ds in datasets.items():
        ds = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype.kind not in "fiub"])
        rename = {v: f"{run_name}_{v}" for v in ds.data_vars}
        rename.update({d: f"{run_name}_{d}" for d in ds.dims if d not in ("seed", "layer")})
        rename.update({c: f"{run_name}_{c}" for c in ds.coords if c not in ("seed", "layer") and c not in rename})
        piece = ds.rename(rename)
        piece.attrs = {}
        pieces.append(piece)
    return xr.merge(pieces, compat="override", join="outer") if pieces else xr.Dataset()
