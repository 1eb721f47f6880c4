"""Spiking backend: the dendritic cortical microcircuit in Brian2 (``docs/science.md`` §3; Urbanczik2014, Max2024).

``simulate(cfg, seeds, progress) -> xarray.Dataset`` follows :mod:`neurofa.runner`'s convention. The spiking
network interprets the model description of the configuration's exact mean field
(:func:`~neurofa.spiking.params.mean_field_config`), the same description the rate backend interprets when it runs
that mean field. Brian2 is imported on the first simulation: importing :mod:`neurofa.spiking`,
:mod:`~neurofa.spiking.params` or :mod:`~neurofa.spiking.structure` does not import it.

Modules: :mod:`~neurofa.spiking.params` (timing, the exact rate mean field, the backend's checks),
:mod:`~neurofa.spiking.equations` (the neurons' Brian2 equations), :mod:`~neurofa.spiking.structure` (groups,
synapses and monitors as data, per-run values), :mod:`~neurofa.spiking.network` (Brian2 objects),
:mod:`~neurofa.spiking.device` (Brian2: the standalone build of a structure, runtime runs),
:mod:`~neurofa.spiking.kernels` (the dense loops of the generated code), :mod:`~neurofa.spiking.program` (runs of
built programs, without Brian2), :mod:`~neurofa.spiking.collect` (monitor data → dataset).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from neurofa import spikes
from neurofa.checkpoint import Checkpoint
from neurofa.circuit import InitialWeights, circuit_task, initial_weights
from neurofa.config import Config
from neurofa.divergence import DivergenceError
from neurofa.estimate import Estimate, data_values, microcircuit_size
from neurofa.spiking import collect, program
from neurofa.spiking.noise import weight_noise
from neurofa.spiking.params import EffectiveParameters, effective_parameters, mean_field_config
from neurofa.spiking.structure import RunValues, SpikingPlan, Structure, recorded_windows, spike_window, structure_key
from neurofa.tasks import TaskData, task_spec

__all__ = ["simulate", "estimate", "effective_parameters", "mean_field_config", "structure_key", "run_planned",
           "build_stats", "spike_bound", "simulated_time", "SPIKE_BYTES"]


def build_stats() -> dict[str, Any]:
    """Standalone builds and time spent in this process (:func:`neurofa.spiking.program.stats`)."""
    return program.stats()


def run_planned(plan: SpikingPlan, data: TaskData, weights: InitialWeights, index: int, seed: int,
                checkpoint: Checkpoint | None = None) -> tuple[Structure, RunValues, Any]:
    """Structure, per-run values and monitor output of seed ``seed`` (``index`` into the batch of ``weights``)."""
    structure = plan.structure(data)
    values = plan.values(structure, data, weights, index, seed)
    return structure, values, program.run_seed(plan.cfg, structure, values, checkpoint)


def simulate(cfg: Config, seeds: list[int], progress: bool = True, checkpoint: Checkpoint | None = None) -> xr.Dataset:
    """Simulate ``cfg`` for each seed (sequentially; one standalone build per structure) → dataset.

    With ``simulation.checkpoint_interval`` > 0 every seed runs in chunks (:mod:`neurofa.spiking.chunks`);
    ``checkpoint`` keeps each finished chunk, and a run given a checkpoint with finished chunks continues after
    them, with the random generators restored: its result is bitwise that of the run not interrupted."""
    plan = SpikingPlan.of(cfg)
    if not progress and cfg.spiking.report:
        plan = dataclasses.replace(plan, cfg=dataclasses.replace(cfg, spiking=dataclasses.replace(cfg.spiking,
                                                                                                  report=False)))
    seeds = [int(s) for s in seeds]
    weights = initial_weights(cfg, seeds, plan.model)
    per_seed, times, structure = [], None, None
    trains: list[tuple[np.ndarray, np.ndarray]] = []
    windows: list[list[float]] = []
    diverged: dict[int, tuple[str, float]] = {}
    largest = 0.0
    wall = 0.0
    builds0 = build_stats()["builds"]
    start = time.perf_counter()
    bar = tqdm(seeds, desc=f"{cfg.name} spiking", unit="seed", disable=not progress, leave=False)
    for index, seed in enumerate(bar):
        data = circuit_task(cfg, seed)
        s, values, out = run_planned(plan, data, weights, index, seed, checkpoint)
        if structure is not None and s != structure:  # seeds of one config share a structure
            raise RuntimeError("seeds of one configuration produced different network structures")
        structure = s
        wall += out.wall_s
        times = out.record_times
        with np.errstate(invalid="ignore", over="ignore"):
            per_seed.append(collect.seed_dataset(plan.model, plan.eff, s, data, values, out, weights, index))
        found = collect.divergence(out, s, weights, index)
        if found is not None:
            diverged[seed] = found
        largest = max(largest, collect.max_abs_weight(out, s, weights, index))
        if s.spike_groups:
            trains.append(collect.seed_spikes(collect.cell_table(plan.model, s), s, out))
            windows = recorded_windows(s, values.spike_window)
    assert structure is not None and times is not None
    total = time.perf_counter() - start
    extra = _summary(plan.eff, cfg, structure, len(seeds), wall, total, build_stats()["builds"] - builds0)
    extra["max_abs_weight"] = largest
    ds = collect.merge_seeds(plan.model, structure, seeds, per_seed, times, extra)
    if structure.spike_groups:
        recorded = spikes.spike_dataset(collect.cell_table(plan.model, structure), seeds, trains, windows,
                                        structure.end_time, structure.dt, plan.eff.nu_max)
        ds.attrs[spikes.ATTR] = recorded
        seed_of_spike = recorded["spike_seed"].values
        ds.attrs["extra_summary"]["spikes_recorded_per_seed"] = [int(np.sum(seed_of_spike == s)) for s in seeds]
    if diverged:
        first = min(t for _, t in diverged.values())
        quantity = next(q for q, t in diverged.values() if t == first)
        raise DivergenceError(cfg.name, sorted(diverged), first, "ms", quantity, partial=ds)
    return ds


def estimate(cfg: Config, n_seeds: int) -> Estimate:
    """Time steps over all seeds (the training presentations and the test set presented after them, of the task's
    own size: :attr:`~neurofa.tasks.base.TaskSpec.test_samples`), and the memory: about 16 values per synapse and 40
    per cell in Brian2, weight snapshots of every synapse and per-cell accumulators (four per cell with
    ``record_detail``) at every record, the half-presentation samples of the output and the presentation sequence of
    one seed (seeds run one after another, ×2 for the copies Brian2 and the collection make), the dataset's series
    for all seeds and the task's data, 8 bytes each; and :data:`SPIKE_BYTES` per spike that
    ``spiking.record_spikes`` can record (:func:`spike_bound`)."""
    eff = effective_parameters(cfg)
    sizes = cfg.network.layers
    synapses, cells = microcircuit_size(sizes)
    cells += float(sizes[0])
    task = task_spec(cfg.task.name)
    n_pres = eff.duration / eff.t_pres + (task.test_samples(cfg.task) if task.targets else 0)
    records = eff.duration / eff.record_interval + 1
    per_record = synapses + cells * (4 if cfg.simulation.record_detail else 1)
    one_seed = 16 * synapses + 40 * cells + 2 * (records * per_record + n_pres * (4 * sizes[-1] + sizes[0] + 2))
    steps = (n_pres * eff.t_pres + eff.dt) / eff.dt
    return Estimate(steps=float(n_seeds) * steps,
                    bytes=8.0 * (one_seed + n_seeds * records * per_record + data_values(cfg, n_seeds))
                    + SPIKE_BYTES * n_seeds * spike_bound(cfg))


#: bytes per recorded spike: Brian2's monitor (8 + 4), its copy and the spike dataset (8 + 4 + 8), with slack
SPIKE_BYTES = 48.0


def simulated_time(cfg: Config) -> dict[str, float]:
    """The spiking time one seed of ``cfg`` simulates, ms: ``train`` and ``test`` presentations and the ``total``
    that the program runs (:attr:`Structure.simulated_time`). A run with ``task.n_test`` test presentations
    simulates them after training, so a speed computed from the training time alone is too low."""
    s = SpikingPlan.of(cfg).structure(circuit_task(cfg, 0))
    return {"train": s.train_time, "test": s.n_test_pres * s.t_pres, "total": s.simulated_time,
            "t_pres": s.t_pres}


def spike_bound(cfg: Config) -> float:
    """The most spikes one seed can record: every recorded cell firing at ν_max through every recorded window."""
    if not cfg.spiking.record_spikes:
        return 0.0
    plan = SpikingPlan.of(cfg)
    s = plan.structure(circuit_task(cfg, 0))
    n_pres = s.n_train_pres + s.n_test_pres
    recorded = recorded_windows(s, spike_window(cfg.spiking.record_spikes_windows, n_pres, s.n_train_pres,
                                               s.t_pres) if s.spike_windows else None)
    window_ms = sum(stop - start for start, stop in recorded)
    cells = sum(plan.model.population(name).size for name in s.spike_groups)
    return cells * plan.eff.nu_max / 1000.0 * window_ms


def _summary(eff: EffectiveParameters, cfg: Config, structure: Structure, n_seeds: int, wall: float, total: float,
             builds: int) -> dict[str, Any]:
    sim_s = structure.simulated_time / 1000.0 * n_seeds
    return {
        "spiking_device": cfg.spiking.device,
        "spiking_builds": builds,
        "spiking_run_wall_s": wall,
        "spiking_total_wall_s": total,
        "spiking_realtime_factor": sim_s / max(wall, 1e-9),
        "spiking_t_pres_ms": eff.t_pres,
        "spiking_duration_ms": eff.duration,
        "spiking_sigma": eff.sigma,
        "spiking_tau_xi_ms": eff.tau_xi,
        "spiking_tau_hp_ms": eff.tau_hp,
        "spiking_time_scale": eff.time_scale,
        "spiking_weight_noise": list(weight_noise(cfg)),
    }
