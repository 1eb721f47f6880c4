"""Spiking backend: the dendritic cortical microcircuit in Brian2 (SCIENCE.md §3; Urbanczik2014, Max2024).

``simulate(cfg, seeds, progress) -> xarray.Dataset`` follows :mod:`neurofa.runner`'s convention. Brian2 is imported
lazily: importing :mod:`neurofa.spiking` or :mod:`neurofa.spiking.params` does not import it.

Modules: :mod:`~neurofa.spiking.params` (effective parameters, their derivation and the exact rate mean field),
:mod:`~neurofa.spiking.equations` (Brian2 equation strings), :mod:`~neurofa.spiking.network` (Brian2 objects),
:mod:`~neurofa.spiking.device` (runtime / cpp_standalone, one build per structure), :mod:`~neurofa.spiking.collect`
(monitor data → dataset).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["simulate", "effective_parameters", "mean_field_config"]


def effective_parameters(cfg: Any) -> Any:
    from neurofa.spiking.params import effective_parameters as eff

    return eff(cfg)


def mean_field_config(cfg: Any) -> Any:
    from neurofa.spiking.params import mean_field_config as mf

    return mf(cfg)


def simulate(cfg: Any, seeds: list[int], progress: bool = True) -> Any:
    """Simulate ``cfg`` for each seed (sequentially; one standalone build per structure) → dataset."""
    import dataclasses

    from neurofa.circuit import circuit_task, initial_weights
    from neurofa.spiking import collect, device
    from neurofa.spiking.params import effective_parameters as eff_of

    eff = eff_of(cfg)
    if not progress and cfg.spiking.report:
        cfg = dataclasses.replace(cfg, spiking=dataclasses.replace(cfg.spiking, report=False))
    seeds = [int(s) for s in seeds]
    weights = initial_weights(cfg, seeds)
    per_seed, times, structure = [], None, None
    wall = 0.0
    builds0 = device.stats()["builds"]
    start = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(seeds, desc=f"{cfg.name} spiking", unit="seed", disable=not progress, leave=False)
    for index, seed in enumerate(bar):
        data = circuit_task(cfg, seed)
        s, values, out = device.plan_and_run(cfg, eff, data, weights, index, seed)
        if structure is not None and s != structure:  # seeds of one config share a structure
            raise RuntimeError("seeds of one configuration produced different network structures")
        structure = s
        wall += out.wall_s
        times = out.record_times
        per_seed.append(collect.seed_dataset(cfg, eff, s, data, values, out, weights, index))
    total = time.perf_counter() - start
    sim_s = structure.run_time / 1000.0 * len(seeds)
    extra = {
        "spiking_device": cfg.spiking.device,
        "spiking_builds": device.stats()["builds"] - builds0,
        "spiking_run_wall_s": wall,
        "spiking_total_wall_s": total,
        "spiking_realtime_factor": sim_s / max(wall, 1e-9),
        "spiking_t_pres_ms": eff.t_pres,
        "spiking_duration_ms": eff.duration,
        "spiking_sigma": eff.sigma,
        "spiking_tau_xi_ms": eff.tau_xi,
        "spiking_tau_hp_ms": eff.tau_hp,
        "spiking_time_scale": eff.time_scale,
    }
    return collect.merge_seeds(cfg, structure, seeds, per_seed, times, extra)
