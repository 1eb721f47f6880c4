"""The one entry point: (configuration, backend, seeds) → :class:`~neurofa.results.Result`.

Backends are registered in :data:`BACKENDS` per backend name and model kind as ``simulate(cfg, seeds, progress) ->
xarray.Dataset``, and their checks run at the edge (:func:`neurofa.config.check_backend`). They share the dataset
convention below, so ``compare``, ``plot`` and ``sweep`` need nothing backend-specific:

- coords ``seed`` (int), ``time`` (ms for microcircuits, epochs for discrete-time networks; ``time.attrs['units']``),
  ``layer`` (hidden-layer index ℓ = 1 … N−1);
- ``angle_B_WT`` (seed, time, layer): ∠(B_ℓ, W_{ℓ+1}ᵀ) in degrees; ``angle_B_RHS`` (seed, time, layer):
  ∠(B_ℓ, φ'_ℓ W_{ℓ+1}ᵀ φ'_{ℓ+1}); ``loss`` (seed, time); ``apical_mismatch`` (seed, time, layer);
- per seed: ``test_accuracy``, ``train_accuracy``, ``test_loss`` where the task defines them;
- with ``simulation.record_detail`` (used by ``neurofa compare``), window means over each record interval
  (t_{k−1}, t_k] per neuron: ``rate_pyr`` (seed, time, pyr) rates of all pyramidal cells of layers 1…N as a
  fraction of the maximal rate (φ in the rate backend, spike count / (ν_max · window) in the spiking backend),
  ``rate_int`` (seed, time, int) the same for all interneurons, ``v_bas`` (seed, time, pyr) basal potentials and
  ``v_api`` (seed, time, hid) apical potentials of hidden pyramidal cells (without PAL's noise); and weight
  snapshots at t_k: ``weights_W`` (seed, time, w_index) all forward weights W_1…W_N flattened row-major and
  concatenated, ``weights_B`` (seed, time, b_index) all backprojections B_1…B_{N−1} likewise. Coordinates
  ``pyr_layer``/``int_layer``/``hid_layer`` on the unit dims give each unit's layer;
- ``attrs['extra_summary']`` (optional dict) adds backend-specific keys to ``summary.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import xarray as xr

from neurofa import spiking
from neurofa.config import Config, ConfigError, check_backend, dump_config, load_config
from neurofa.rate import layered
from neurofa.rate import microcircuit as rate_microcircuit
from neurofa.results import Result, summary_from_dataset, to_jsonable

__all__ = ["run", "BACKENDS", "resolve_seeds", "simulator"]

Simulate = Callable[..., xr.Dataset]

#: backend name → model kind → ``simulate(cfg, seeds, progress)``, one line per implementation
BACKENDS: dict[str, dict[str, Simulate]] = {
    "rate": {"microcircuit": rate_microcircuit.simulate, "mlp": layered.simulate},
    "spiking": {"microcircuit": spiking.simulate},
}


def resolve_seeds(cfg: Config, seeds: int | Iterable[int] | None) -> list[int]:
    """``None`` → ``range(cfg.simulation.seeds)``; an int N → ``range(N)``; an iterable → its values."""
    if seeds is None:
        seeds = cfg.simulation.seeds
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds = {seeds} is invalid: must be ≥ 1")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("seeds is empty: give at least one seed")
    if len(set(out)) != len(out):
        raise ConfigError(f"seeds = {out} contains duplicates")
    return out


def simulator(cfg: Config, backend: str) -> Simulate:
    """The registered ``simulate`` of ``backend`` for ``cfg``'s model kind, after the backend's checks."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    kinds = BACKENDS[backend]
    if cfg.model not in kinds:
        allowed = ", ".join(name for name, models in BACKENDS.items() if cfg.model in models)
        raise ConfigError(f"backend = {backend!r} is not allowed for model {cfg.model!r}; allowed: {allowed}")
    check_backend(cfg, backend)
    return kinds[cfg.model]


def run(
    cfg: Config | str | dict[str, Any],
    backend: str = "rate",
    seeds: int | Iterable[int] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    progress: bool = True,
) -> Result:
    """Simulate ``cfg`` with ``backend`` for every seed (one batch where the backend allows) and summarise."""
    if not isinstance(cfg, Config) or overrides:
        cfg = load_config(cfg, overrides)
    seed_list = resolve_seeds(cfg, seeds)
    simulate = simulator(cfg, backend)
    start = time.perf_counter()
    ds = simulate(cfg, seed_list, progress=progress)
    wall = time.perf_counter() - start
    extra = ds.attrs.pop("extra_summary", {}) or {}
    ds.attrs.update({"backend": backend, "model": cfg.model, "name": cfg.name})
    summary = {**summary_from_dataset(ds), **to_jsonable(extra), "backend": backend, "wall_time_s": wall}
    text = dump_config(cfg, extra={"backend": backend, "seeds": seed_list})
    return Result(ds, summary, text)
