"""The one entry point: (configuration, backend, seeds) → :class:`~neurofa.results.Result`.

Backends are registered in :data:`BACKENDS` per backend name and model kind as a :class:`Backend`:
``simulate(cfg, seeds, progress) -> xarray.Dataset`` and ``estimate(cfg, n_seeds)`` of its cost. At the edge
(:func:`simulator`) the backend's registered checks run (:func:`neurofa.config.check_backend`) and the estimate is
held against the configuration's bounds (:mod:`neurofa.estimate`). A backend whose state becomes non-finite raises
:class:`~neurofa.divergence.DivergenceError`; :func:`run` attaches the partial result and re-raises. The
backends share the dataset convention below, so ``compare``, ``plot`` and ``sweep`` need nothing backend-specific:

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
- ``attrs['extra_summary']`` (optional dict) adds backend-specific keys to ``summary.json``;
- ``attrs['spikes']`` (optional): the spike dataset of :mod:`neurofa.spikes`, which :func:`run` moves to
  :attr:`Result.spikes <neurofa.results.Result.spikes>`.

A backend registered with ``checkpoints=True`` also takes ``checkpoint``, a :class:`~neurofa.checkpoint.Checkpoint`
it writes every ``simulation.checkpoint_interval`` and continues from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import xarray as xr

from neurofa import spiking
from neurofa.checkpoint import Checkpoint, fingerprint
from neurofa.config import Config, ConfigError, check_backend, dump_config, load_config, provenance, to_dict
from neurofa.divergence import DivergenceError, saturation_warnings
from neurofa.estimate import Estimate, check_bounds
from neurofa.rate import layered
from neurofa.rate import microcircuit as rate_microcircuit
from neurofa.results import Result, summary_from_dataset, to_jsonable
from neurofa.spikes import ATTR as SPIKES_ATTR

__all__ = ["run", "BACKENDS", "Backend", "resolve_seeds", "simulator", "estimate", "run_fingerprint"]

Simulate = Callable[..., xr.Dataset]


class Backend(NamedTuple):
    """One simulator of one model kind: how it runs, what a run will cost, and whether ``simulate`` takes a
    ``checkpoint`` (:class:`neurofa.checkpoint.Checkpoint`) to write to and resume from."""

    simulate: Simulate
    estimate: Callable[[Config, int], Estimate]
    checkpoints: bool = False


#: backend name → model kind → implementation, one line each
BACKENDS: dict[str, dict[str, Backend]] = {
    "rate": {"microcircuit": Backend(rate_microcircuit.simulate, rate_microcircuit.estimate, checkpoints=True),
             "mlp": Backend(layered.simulate, layered.estimate)},
    "spiking": {"microcircuit": Backend(spiking.simulate, spiking.estimate, checkpoints=True)},
}


def resolve_seeds(cfg: Config, seeds: int | Iterable[int] | None) -> list[int]:
    """``None`` → ``range(cfg.simulation.seeds)``; an int N → ``range(N)``; an iterable → its values."""
    if seeds is None:
        seeds = cfg.simulation.seeds
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds = {seeds} is invalid: must be ≥ 1")
        if seeds > cfg.simulation.max_steps:  # every seed runs at least one step: refused before it is listed
            raise ConfigError(f"seeds = {seeds} (simulation.seeds or --seeds) is more than simulation.max_steps = "
                              f"{cfg.simulation.max_steps:.3g} time steps over all seeds, at least one per seed "
                              "(--set simulation.max_steps=... to run it)")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("seeds is empty: give at least one seed")
    if min(out) < 0:
        raise ConfigError(f"seeds = {out} is invalid: seeds must be ≥ 0")
    if len(set(out)) != len(out):
        raise ConfigError(f"seeds = {out} contains duplicates")
    return out


def _backend(cfg: Config, backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    kinds = BACKENDS[backend]
    if cfg.model not in kinds:
        allowed = ", ".join(name for name, models in BACKENDS.items() if cfg.model in models)
        raise ConfigError(f"backend = {backend!r} is not allowed for model {cfg.model!r}; allowed: {allowed}")
    return kinds[cfg.model]


def estimate(cfg: Config, backend: str, n_seeds: int) -> Estimate:
    """What a run of ``n_seeds`` seeds will cost (after the backend's checks)."""
    impl = _backend(cfg, backend)
    check_backend(cfg, backend)
    return impl.estimate(cfg, n_seeds)


def simulator(cfg: Config, backend: str, n_seeds: int = 1) -> Simulate:
    """The registered ``simulate`` of ``backend`` for ``cfg``'s model kind, after the backend's checks and the
    bounds on the estimated cost of ``n_seeds`` seeds."""
    check_bounds(cfg, estimate(cfg, backend, n_seeds))
    return _backend(cfg, backend).simulate


def run_fingerprint(cfg: Config, backend: str, seeds: list[int]) -> str:
    """What ties a checkpoint to a run: the configuration (without provenance), the backend, the seeds and the
    code that wrote it (neurofa's version and git commit, Brian2's and NumPy's versions): a checkpoint of other code
    is refused."""
    versions = {**provenance(), **{name: version(name) for name in ("brian2", "numpy")}}
    return fingerprint(json.dumps({"config": to_dict(cfg), "backend": backend, "seeds": seeds, "versions": versions},
                                  sort_keys=True))


def run(
    cfg: Config | str | dict[str, Any],
    backend: str = "rate",
    seeds: int | Iterable[int] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> Result:
    """Simulate ``cfg`` with ``backend`` for every seed (one batch where the backend allows) and summarise.

    ``checkpoint``: a directory where the run writes a checkpoint every ``simulation.checkpoint_interval`` and
    from whose last checkpoint it continues (:mod:`neurofa.checkpoint`; remove it once the result is saved, as
    :meth:`neurofa.rundir.RunDirectory.finish` does)."""
    if not isinstance(cfg, Config) or overrides:
        cfg = load_config(cfg, overrides)
    seed_list = resolve_seeds(cfg, seeds)
    simulate = simulator(cfg, backend, len(seed_list))
    start = time.perf_counter()
    text = dump_config(cfg, extra={"backend": backend, "seeds": seed_list})
    kwargs: dict[str, Any] = {}
    if checkpoint is not None and _backend(cfg, backend).checkpoints:
        kwargs["checkpoint"] = Checkpoint(checkpoint, run_fingerprint(cfg, backend, seed_list))
    try:
        ds = simulate(cfg, seed_list, progress=progress, **kwargs)
    except DivergenceError as exc:
        if exc.partial is not None:
            exc.result = _result(exc.partial, backend, cfg, time.perf_counter() - start, text, exc.summary())
        raise
    return _result(ds, backend, cfg, time.perf_counter() - start, text)


def _result(ds: xr.Dataset, backend: str, cfg: Config, wall: float, text: str,
            diverged: dict[str, Any] | None = None) -> Result:
    """The Result of a backend's dataset: the standard summary keys, the backend's own, warnings of a silent
    failure (:func:`neurofa.divergence.saturation_warnings`) and, for a diverged run, where it diverged."""
    extra = ds.attrs.pop("extra_summary", {}) or {}
    spikes = ds.attrs.pop(SPIKES_ATTR, None)
    ds.attrs.update({"backend": backend, "model": cfg.model, "name": cfg.name})
    summary = {**summary_from_dataset(ds), **to_jsonable(extra), "backend": backend, "wall_time_s": wall}
    warnings = saturation_warnings(ds, extra.get("max_abs_weight"))
    if warnings:
        summary["warnings"] = warnings
    summary.update(diverged or {"diverged": False})
    return Result(ds, summary, text, spikes)
