"""Parameter sweeps: every combination of grid values × every seed, as tasks on a Dask cluster.

A *point* is (configuration, seed). Each finished point is written at once, atomically, to its own pair of files
under ``OUT/points/`` — ``<hash>-seed<s>.nc`` (the one-seed dataset) and then ``<hash>-seed<s>.json`` (grid values,
seed, per-seed summary; its presence marks the point finished) — where ``<hash>`` is a stable hash of the resolved
configuration and the backend. Re-running the same sweep skips finished points, and a worker that dies loses only
its running task: the scheduler reschedules it and the task skips the seeds already on disk.

Rate points of one configuration differ only by seed, so they run as one batched backend call (several seeds per
task), chunked so that there are at least twice as many tasks as workers. Spiking points are grouped by the
standalone build they need (:func:`neurofa.spiking.structure_key`); each group runs in sequence within as few tasks
as keep the workers busy, so a structure is compiled once per task and points that differ only in run arguments
reuse it. Brian2 is imported when each worker starts (it cannot be imported from a worker thread).

At the end the points are merged into ``results.nc`` with the grid keys as dimensions
(``attrs['sweep_keys']``), ``summary.json`` (per grid point the final metrics, mean and SD over seeds, and the
failed points) and ``figures/`` (the final metrics against each grid key).

Clusters: ``local`` starts a :class:`dask.distributed.LocalCluster` of worker processes; ``slurm`` starts a
``dask_jobqueue.SLURMCluster`` (extra ``cluster``); ``tcp://host:port`` connects to a running scheduler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import dask
import numpy as np
import xarray as xr
from dask.distributed import Client, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin
from tqdm.auto import tqdm

from neurofa.config import Config, ConfigError, dump_config, load_config, parse_override, to_dict
from neurofa.plotting import pyplot, save_figure
from neurofa.results import (
    NETCDF_ENGINE,
    Result,
    atomic_write,
    atomic_write_text,
    merge_results,
    summary_from_dataset,
    to_jsonable,
)
from neurofa.rundir import RunDirectory
from neurofa.runner import BACKENDS, resolve_seeds, run, simulator
from neurofa.spiking import structure_key
from neurofa.spiking.program import available_cores

__all__ = [
    "ClusterError",
    "FailedPoint",
    "SweepResult",
    "parse_grid",
    "grid_points",
    "point_hash",
    "final_metrics",
    "sweep",
    "sweep_figure",
    "SLURM_OPTIONS",
]

#: cluster options accepted from the CLI or a ``--cluster-config`` YAML file (``slurm``)
SLURM_OPTIONS = (
    "queue", "account", "walltime", "cores", "memory", "jobs", "processes", "job_extra_directives",
    "job_script_prologue", "interface", "local_directory", "log_directory", "python", "start_timeout",
)
CONNECT_TIMEOUT_S = 10
TASK_RETRIES = 2
#: the final metrics reported per grid point and drawn against each grid key, main metric first
METRICS = ("test_accuracy", "test_loss", "train_accuracy", "loss_final", "angle_B_WT_final", "angle_B_RHS_final")


class ClusterError(ConfigError):
    """A cluster that cannot be started or reached (the message names it and says what to check)."""


class FailedPoint(NamedTuple):
    """A point that did not finish: its grid values with the seed, and the error (``point, error = failed[0]``)."""

    point: dict[str, Any]
    error: str

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.point.items())
        return f"{where}: {self.error}"


@dataclass
class SweepResult(Result):
    """The merged sweep (a :class:`Result` whose dataset has the grid keys as dimensions) plus what failed."""

    failed: list[FailedPoint] = field(default_factory=list)
    directory: Path | None = None
    computed: int = 0  # points computed by this call (the rest were found finished on disk)


# ----------------------------------------------------------------------------------------------------------------
# the grid


def _split_values(text: str) -> list[str]:
    """Split ``"1,2,[3,4]"`` at top-level commas (commas inside brackets or braces belong to a value)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _check_key(key: str) -> None:
    """Raise ConfigError unless ``key`` is a dotted path to a field of :class:`Config`."""
    cls: Any = Config
    prefix = ""
    for part in key.split("."):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"--grid {key}: {prefix!r} is a value, not a section")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {(prefix + '.' if prefix else '') + close[0]!r}?)" if close else ""
            raise ConfigError(f"--grid: unknown key {key!r}{hint}; allowed keys under {prefix or 'the top level'}: "
                              f"{', '.join(names)}")
        cls = typing.get_type_hints(cls)[part]
        prefix = f"{prefix}.{part}" if prefix else part


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["plasticity.eta_bw=10,20,50", ...]`` → ``{"plasticity.eta_bw": [10, 20, 50], ...}``.

    Values are YAML-parsed (``10`` → int, ``fa`` → str, ``[5,20,5]`` → list). An unknown key, an empty value
    list, a repeated key or repeated values raise :class:`ConfigError`; whether each value is valid for its key is
    checked by :func:`sweep`, which validates every grid point's configuration before starting.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, _ = parse_override(item)
        raw = item.split("=", 1)[1]
        _check_key(key)
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; give all its values once: {key}=V1,V2,...")
        texts = [t for t in _split_values(raw) if t]
        if not texts:
            raise ConfigError(f"--grid {item!r} is invalid: the value list of {key} is empty; expected {key}=V1,V2,...")
        values = [parse_override(f"{key}={t}")[1] for t in texts]
        labels = [_coord_value(v) for v in values]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--grid {item!r} is invalid: repeated values")
        grid[key] = values
    if not grid:
        raise ConfigError("--grid is required: give at least one KEY=V1,V2,...")
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid values, in the order of the keys (last key fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _coord_value(value: Any) -> Any:
    """A grid value as a coordinate label: scalars stay, lists and mappings become compact JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _coords(grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Coordinate labels per key; a numeric key with any float becomes all floats (one dtype per dimension)."""
    out = {}
    for key, values in grid.items():
        labels = [_coord_value(v) for v in values]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels)
        if numeric and any(isinstance(v, float) for v in labels):
            labels = [float(v) for v in labels]
        out[key] = labels
    return out


def point_hash(cfg: Config, backend: str) -> str:
    """A stable 16-hex-digit hash of the resolved configuration and the backend (the seed is not part of it)."""
    text = json.dumps({"config": to_dict(cfg), "backend": backend}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _backend_name(backend: str | Callable[..., xr.Dataset]) -> str:
    if isinstance(backend, str):
        return backend
    return f"{getattr(backend, '__module__', '?')}.{getattr(backend, '__qualname__', repr(backend))}"


# ----------------------------------------------------------------------------------------------------------------
# point files


def _point_files(points_dir: Path, phash: str, seed: int) -> tuple[Path, Path]:
    stem = points_dir / f"{phash}-seed{seed}"
    return stem.with_suffix(".nc"), stem.with_suffix(".json")


def _is_finished(points_dir: Path, phash: str, seed: int) -> bool:
    nc, js = _point_files(points_dir, phash, seed)
    return js.exists() and nc.exists()


def _netcdf_ready(ds: xr.Dataset) -> xr.Dataset:
    """A copy whose attributes NetCDF can store (non-scalar values as JSON text), as :meth:`Result.save` does."""
    ds = ds.copy()
    ds.attrs = {k: (v if isinstance(v, (str, int, float)) else json.dumps(to_jsonable(v))) for k, v in ds.attrs.items()}
    return ds


def _write_netcdf(path: Path, ds: xr.Dataset) -> None:
    def write(p: Path) -> None:
        ds.to_netcdf(p, engine=NETCDF_ENGINE)

    atomic_write(path, write)


def _checkpoint_dir(points_dir: Path, phash: str, seeds: list[int]) -> Path:
    """Where a point's batch of ``seeds`` keeps its checkpoints until its files are written."""
    tag = hashlib.sha256(json.dumps(sorted(seeds)).encode()).hexdigest()[:8]
    return points_dir / f"{phash}-{tag}.checkpoint"


def _simulate(cfg: Config, backend: str | Callable[..., xr.Dataset], seeds: list[int],
              checkpoint: Path | None = None) -> tuple[xr.Dataset, dict[str, Any]]:
    """One batched backend call for ``seeds`` (runner.run for a named backend, continuing from ``checkpoint``;
    a callable is used as ``simulate``), and the backend's own summary keys (e.g. ``spiking_builds``)."""
    if isinstance(backend, str):
        result = run(cfg, backend=backend, seeds=seeds, progress=False, checkpoint=checkpoint)
        keys = set(result.summary) - set(summary_from_dataset(result.dataset))
        return result.dataset, {k: result.summary[k] for k in sorted(keys)}
    ds = backend(cfg, seeds, progress=False)
    extra = ds.attrs.pop("extra_summary", None) or {}
    ds.attrs.update({"backend": _backend_name(backend), "model": cfg.model, "name": cfg.name})
    return ds, to_jsonable(extra)


def run_point_task(
    cfg_data: dict[str, Any],
    backend: str | Callable[..., xr.Dataset],
    seeds: list[int],
    coords: dict[str, Any],
    points_dir: str,
    phash: str,
) -> list[dict[str, Any]]:
    """Worker side: simulate the seeds of one configuration not yet on disk and write one file pair per seed.

    With ``simulation.checkpoint_interval`` > 0 the batch keeps checkpoints in ``<hash>-<seeds>.checkpoint`` in
    the points directory until its files are written, so a point killed with its worker (a job past its
    walltime) continues from its last checkpoint when the sweep is run again.

    A model error (an exception of the backend) is returned as a failure record for every seed of the task, since
    rerunning a deterministic simulation would fail again; an I/O error propagates, so that Dask retries the task.
    """
    directory = Path(points_dir)
    todo = [s for s in seeds if not _is_finished(directory, phash, s)]
    records: list[dict[str, Any]] = [{"seed": s, "ok": True, "skipped": True} for s in seeds if s not in todo]
    if not todo:
        return records
    start = time.perf_counter()
    checkpoint = _checkpoint_dir(directory, phash, todo)
    try:
        cfg = load_config(cfg_data)
        ds, backend_summary = _simulate(cfg, backend, todo, checkpoint)
    except Exception as exc:
        return records + [{"seed": s, "ok": False, "error": f"{type(exc).__name__}: {exc}"} for s in todo]
    wall = time.perf_counter() - start
    for seed in todo:
        one = ds.sel(seed=[seed])
        nc, js = _point_files(directory, phash, seed)
        with dask.config.set(scheduler="synchronous"):
            _write_netcdf(nc, _netcdf_ready(one))
        info = {
            "point": coords,
            "seed": seed,
            "config_hash": phash,
            "backend": _backend_name(backend),
            "summary": summary_from_dataset(one),
            "batch_seeds": todo,
            "batch_wall_time_s": wall,
            "batch_backend_summary": backend_summary,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_text(js, json.dumps(to_jsonable(info), indent=1) + "\n")  # last: marks the point finished
        records.append({"seed": seed, "ok": True, "skipped": False})
    shutil.rmtree(checkpoint, ignore_errors=True)
    return records


# ----------------------------------------------------------------------------------------------------------------
# clusters


class Brian2Preload(WorkerPlugin):
    """Worker plugin importing Brian2 when a worker starts (importing it later from a task thread fails)."""

    name = "neurofa-brian2-preload"

    def setup(self, worker: Any) -> None:
        import brian2  # noqa: F401


def _print_dashboard(client: Any) -> None:
    with contextlib.suppress(KeyError, AttributeError):  # a scheduler without a dashboard (bokeh not installed)
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(SLURM_OPTIONS))
    if unknown:
        raise ConfigError(f"cluster option {unknown[0]!r} is not known; allowed: {', '.join(SLURM_OPTIONS)}")
    return dict(options)


def check_cluster(cluster: str, workers: int | None) -> None:
    """The cluster name and the worker count (before any directory is made)."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers = {workers} is invalid: must be ≥ 1")
    if cluster not in ("local", "slurm") and "://" not in cluster:
        raise ConfigError(f"--cluster = {cluster!r} is invalid: expected local, slurm or a scheduler address "
                          "tcp://HOST:PORT")


def local_workers(workers: int | None, threads: int) -> int:
    """Worker processes of a local cluster whose points run ``threads`` threads each: ``workers``, or as many as
    the cores allow; refuses more cores than this process may use (an oversubscribed threaded program is many
    times slower)."""
    cores = available_cores()
    n = workers or (max(1, cores // threads) if threads > 1 else 2)
    if threads > 1 and n * threads > cores:
        raise ConfigError(f"--workers = {n} with spiking.threads = {threads} needs {n * threads} cores, but {cores} "
                          f"are available; allowed: workers × threads ≤ {cores}")
    return n


@contextmanager
def open_cluster(
    cluster: str, workers: int | None, options: dict[str, Any], out: Path, threads: int = 1
) -> Iterator[tuple[Any, int]]:
    """Yield ``(client, expected_workers)`` for ``local``, ``slurm`` or a scheduler address; close what it started.
    ``threads`` is the cores each point uses (``spiking.threads``): a local cluster starts no more workers than
    the cores allow, and SLURM jobs request that many cores per worker."""
    check_cluster(cluster, workers)
    if cluster == "local":
        n = local_workers(workers, threads)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as local, Client(local) as client:
            yield client, n
    elif cluster == "slurm":
        opts = _check_options(options)
        try:  # an optional dependency (extra 'cluster')
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise ClusterError("--cluster slurm needs dask-jobqueue: pip install 'neurofa[cluster]'") from None
        jobs = int(opts.pop("jobs", workers or 2))
        start_timeout = opts.pop("start_timeout", None)
        processes = int(opts.get("processes", 1))
        cores = int(opts.pop("cores", threads * processes))
        if cores < threads * processes:
            raise ConfigError(f"cluster option cores = {cores} is too few for {processes} worker(s) per job with "
                              f"spiking.threads = {threads}; allowed: cores ≥ {threads * processes}")
        kwargs = {"cores": cores, "memory": "2GB", "walltime": "01:00:00", "processes": 1, "python": sys.executable,
                  "log_directory": str(out / "slurm-logs"), **opts}
        kwargs["job_script_prologue"] = list(kwargs.get("job_script_prologue") or []) + [
            "export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"]
        kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
        with SLURMCluster(**kwargs) as slurm, Client(slurm) as client:
            slurm.scale(jobs=jobs)
            if start_timeout is not None:
                try:
                    client.wait_for_workers(1, timeout=float(start_timeout))
                except (TimeoutError, OSError):
                    raise ClusterError(
                        f"--cluster slurm: no worker started within {start_timeout} s (check squeue and "
                        f"{kwargs['log_directory']})") from None
            yield client, jobs * int(kwargs["processes"])
    elif "://" in cluster:
        try:
            client = Client(cluster, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"--cluster {cluster}: no Dask scheduler reachable within {CONNECT_TIMEOUT_S} s "
                               f"({exc})") from None
        with client:
            yield client, max(1, len(client.scheduler_info().get("workers", {})))
    else:
        raise ConfigError(f"--cluster = {cluster!r} is invalid: expected local, slurm or a scheduler address "
                          "tcp://HOST:PORT")


# ----------------------------------------------------------------------------------------------------------------
# planning


def _chunks(seeds: list[int], size: int) -> list[list[int]]:
    n = max(1, math.ceil(len(seeds) / size))
    return [list(map(int, c)) for c in np.array_split(np.asarray(seeds), n) if len(c)]


def plan_tasks(todo: list[list[int]], n_workers: int, batched: bool) -> list[tuple[int, list[int]]]:
    """Split each grid point's unfinished seeds into tasks: one seed per task unless ``batched``; batched chunks
    are as large as possible while giving at least 2 × ``n_workers`` tasks in total."""
    total = sum(len(s) for s in todo)
    size = max(1, total // (2 * max(1, n_workers))) if batched else 1
    return [(i, chunk) for i, seeds in enumerate(todo) if seeds for chunk in _chunks(seeds, size)]


def plan_structure_tasks(todo: list[list[int]], groups: list[str], n_workers: int) -> list[list[tuple[int, list[int]]]]:
    """Spiking points grouped by the build they need (``groups[i]``, the structure key of grid point i): each
    group's (point, seed) pairs run in sequence within max(1, ``n_workers`` // number of groups) tasks, so that a
    structure is compiled once per task — two structures on one worker are two builds, whatever the grid."""
    by_group: dict[str, list[tuple[int, int]]] = {}
    for i, seeds in enumerate(todo):
        for seed in seeds:
            by_group.setdefault(groups[i], []).append((i, seed))
    per_group = max(1, n_workers // max(1, len(by_group)))
    tasks = []
    for items in by_group.values():
        for part in np.array_split(np.arange(len(items)), min(per_group, len(items))):
            tasks.append([(items[k][0], [items[k][1]]) for k in part])
    return tasks


def _structure_key(cfg: Config) -> str:
    """The spiking build a point needs (:func:`neurofa.spiking.structure_key`)."""
    return structure_key(cfg)


def run_points_task(items: list[tuple[dict[str, Any], dict[str, Any], str, list[int]]],
                    backend: str | Callable[..., xr.Dataset], points_dir: str) -> list[dict[str, Any]]:
    """Worker side: :func:`run_point_task` for each (configuration, coords, hash, seeds) in turn; every record
    carries the position of its item."""
    records = []
    for k, (cfg_data, coords, phash, seeds) in enumerate(items):
        records += [{**rec, "item": k} for rec in run_point_task(cfg_data, backend, seeds, coords, points_dir, phash)]
    return records


# ----------------------------------------------------------------------------------------------------------------
# merging


def _last_finite(da: xr.DataArray, dim: str = "time") -> xr.DataArray:
    """The last finite value along ``dim`` (points of different durations are NaN-padded by the merge)."""
    valid = da.notnull() & (abs(da) != np.inf)
    index = (valid * xr.DataArray(np.arange(da.sizes[dim]), dims=dim)).argmax(dim)
    return da.isel({dim: index})


def final_metrics(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per seed (and per grid point) final figures: test/train accuracy and loss, last loss, last angles."""
    out: dict[str, xr.DataArray] = {}
    for name in ("test_accuracy", "train_accuracy", "test_loss"):
        if name in ds and "time" not in ds[name].dims:
            out[name] = ds[name]
    for name, var in (("loss_final", "loss"), ("angle_B_WT_final", "angle_B_WT"), ("angle_B_RHS_final", "angle_B_RHS")):
        if var in ds and "time" in ds[var].dims:
            out[name] = _last_finite(ds[var])
    return out


def _load_point(points_dir: Path, phash: str, seeds: list[int]) -> xr.Dataset | None:
    """The finished seeds of one grid point concatenated along ``seed`` (None when none finished)."""
    parts = [xr.load_dataset(_point_files(points_dir, phash, s)[0], engine=NETCDF_ENGINE)
             for s in seeds if _is_finished(points_dir, phash, s)]
    return xr.concat(parts, dim="seed").sortby("seed") if parts else None


def _merge_points(
    grid_coords: dict[str, list[Any]], coords: list[dict[str, Any]], datasets: list[xr.Dataset | None]
) -> xr.Dataset:
    """Merge per-point datasets into one with a dimension per grid key; a point without any finished seed is
    filled with NaN so the grid stays a full hypercube (and with no finished point at all, only the grid remains)."""
    template = next((ds for ds in datasets if ds is not None), None)
    if template is None:
        return xr.Dataset(coords=grid_coords)
    filled = [(c, ds if ds is not None else xr.full_like(template.astype(float), np.nan))
              for c, ds in zip(coords, datasets)]
    return merge_results(filled).transpose(*grid_coords, "seed", ...)


def _mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise mean and SD (ddof 1; 0 for a single value) of the finite entries; NaN for a row without any."""
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    filled = np.where(finite, values, 0.0)
    mean = np.divide(filled.sum(axis=1), n, out=np.full(len(n), np.nan), where=n > 0)
    sq = np.where(finite, (values - mean[:, None]) ** 2, 0.0).sum(axis=1)
    sd = np.sqrt(np.divide(sq, n - 1, out=np.zeros(len(n)), where=n > 1))
    return mean, np.where(n > 0, sd, np.nan)


def _grid_summary(ds: xr.Dataset, keys: list[str]) -> list[dict[str, Any]]:
    """Per grid point: its values, the number of seeds with results and each final metric's mean and SD over seeds
    (per hidden layer for the angles)."""
    metrics = final_metrics(ds)
    rows = []
    for index in itertools.product(*(range(ds.sizes[k]) for k in keys)):
        sel = dict(zip(keys, index))
        row: dict[str, Any] = {k: to_jsonable(ds[k].values[i]) for k, i in sel.items()}
        for name, da in metrics.items():
            values = da.isel(sel).transpose(..., "seed").values
            per_row = values.reshape(-1, values.shape[-1])  # (layer or 1, seed)
            row.setdefault("n_seeds", int(np.isfinite(per_row).all(axis=0).sum()))
            mean, sd = _mean_sd(per_row)
            row[f"{name}_mean"], row[f"{name}_sd"] = (mean, sd) if values.ndim > 1 else (mean[0], sd[0])
        rows.append(to_jsonable(row))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# the sweep


def sweep(
    config: str | Path | dict[str, Any] | Config,
    grid: dict[str, list[Any]],
    seeds: int | Iterable[int] | None = None,
    cluster: str = "local",
    workers: int | None = None,
    out: str | Path = "runs/sweep",
    backend: str | Callable[..., xr.Dataset] = "rate",
    cluster_options: dict[str, Any] | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | list[str] | None = None,
    plots: bool = True,
    overwrite: bool = False,
    threads: int | None = None,
) -> SweepResult:
    """Run ``config`` for every combination of ``grid`` values and every seed on a Dask cluster.

    ``grid`` maps dotted keys to value lists (:func:`parse_grid`); ``seeds`` is N (seeds 0…N−1), a list, or None
    (``simulation.seeds``); ``cluster`` is ``local``, ``slurm`` or ``tcp://HOST:PORT``; ``workers`` the local worker
    processes or SLURM jobs; ``backend`` ``rate``, ``spiking`` or a callable ``simulate(cfg, seeds, progress)``.
    ``threads`` sets ``spiking.threads`` of every point (spiking backend): local clusters then start at most
    cores ÷ threads workers, SLURM jobs request threads cores per worker.
    Every grid point's configuration is validated before anything starts. Finished points under ``out/points``
    are kept, so calling again with the same arguments resumes (and retries failed points); ``overwrite`` starts
    afresh. ``out`` is a run directory (:class:`neurofa.rundir.RunDirectory`: locked while the sweep runs, marked
    incomplete until the merged result is written). Returns the merged result; points that failed are listed in
    ``.failed`` and summary.json, and their values in the dataset are NaN.
    """
    started = time.perf_counter()
    if threads is not None:
        if backend != "spiking":
            raise ConfigError(f"threads = {threads!r} is not allowed with backend = {backend!r}; allowed: the spiking "
                              "backend (spiking.threads)")
        if threads < 1:
            raise ConfigError(f"threads = {threads!r} is invalid: must be ≥ 1")
        overrides = _with_override(overrides, "spiking.threads", int(threads))
    plan = _plan(config, grid, seeds, backend, overrides)
    check_cluster(cluster, workers)
    out = Path(out)
    rundir = RunDirectory.open(out, command="sweep", overwrite=overwrite, resume=(out / "points").is_dir())
    try:
        points_dir = out / "points"
        points_dir.mkdir(parents=True, exist_ok=True)
        _drop_unreadable_points(points_dir)
        todo = [[s for s in plan.seeds if not _is_finished(points_dir, h, s)] for h in plan.hashes]
        n_total = len(plan.points) * len(plan.seeds)
        failed: list[FailedPoint] = []
        computed = 0
        if any(todo):
            point_threads = max(c.spiking.threads for c in plan.configs) if plan.backend == "spiking" else 1
            computed, failed = _run_tasks(plan.configs, plan.coords, plan.hashes, todo, backend, cluster, workers,
                                          cluster_options or {}, out, n_total, n_total - sum(map(len, todo)),
                                          progress, point_threads)
        result = _merged(plan, points_dir, failed, computed, out, time.perf_counter() - started)
        with dask.config.set(scheduler="synchronous"):
            result.write(rundir, plots=sweep_figure if plots else False)
    finally:
        rundir.release()
    return result


def _with_override(overrides: dict[str, Any] | list[str] | None, key: str, value: Any) -> dict[str, Any] | list[str]:
    """``overrides`` (a mapping or ``KEY=VALUE`` strings) with ``key`` set to ``value``."""
    if isinstance(overrides, list):
        return [*overrides, f"{key}={value}"]
    return {**(overrides or {}), key: value}


@dataclass
class _Plan:
    """A validated sweep: the base configuration, the grid's points with their configurations, coordinates and
    hashes, the seeds and the backend's name."""

    base: Config
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]
    configs: list[Config]
    coords: list[dict[str, Any]]
    coords_all: dict[str, list[Any]]
    hashes: list[str]
    seeds: list[int]
    backend: str


def _plan(config: str | Path | dict[str, Any] | Config, grid: dict[str, list[Any]],
          seeds: int | Iterable[int] | None, backend: str | Callable[..., xr.Dataset],
          overrides: dict[str, Any] | list[str] | None) -> _Plan:
    """Validate everything before anything starts: the backend, the grid's keys, every point's configuration and,
    for a named backend, its checks and cost bounds."""
    if isinstance(backend, str) and backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    if not grid:
        raise ConfigError("grid is empty: give at least one key with values")
    for key, values in grid.items():
        _check_key(key)
        if not values:
            raise ConfigError(f"grid {key} has no values; give at least one")
    base = load_config(config, overrides)
    seed_list = resolve_seeds(base, seeds)
    points = grid_points(grid)
    configs = []
    for point in points:
        where = ", ".join(f"{k}={v!r}" for k, v in point.items())
        try:
            configs.append(load_config(base, point))
            if configs[-1].spiking.record_spikes and _backend_name(backend) == "spiking":
                raise ConfigError(f"spiking.record_spikes = {configs[-1].spiking.record_spikes!r} is not allowed in a "
                                  "sweep, which keeps no spikes; allowed: [] (record spikes with neurofa run)")
            if isinstance(backend, str):  # the backend's own checks and bounds, before anything starts
                simulator(configs[-1], backend, len(seed_list))
        except ConfigError as exc:
            raise ConfigError(f"grid point {where}: {exc}") from None
    name = _backend_name(backend)
    coords_all = _coords(grid)
    coords = [{k: coords_all[k][grid[k].index(v)] for k, v in p.items()} for p in points]
    return _Plan(base, grid, points, configs, coords, coords_all, [point_hash(c, name) for c in configs],
                 seed_list, name)


def _merged(plan: _Plan, points_dir: Path, failed: list[FailedPoint], computed: int, out: Path,
            wall: float) -> SweepResult:
    """The finished points merged, with the sweep's summary."""
    with dask.config.set(scheduler="synchronous"):  # merging is local work, whatever client is still around
        merged = _merge_points(plan.coords_all, plan.coords,
                               [_load_point(points_dir, h, plan.seeds) for h in plan.hashes])
    keys = list(plan.grid)
    merged.attrs.update({"sweep_keys": keys, "backend": plan.backend, "name": plan.base.name,
                         "model": plan.base.model})
    summary = {
        "sweep_keys": keys,
        "grid": {k: to_jsonable(v) for k, v in plan.coords_all.items()},
        "seeds": plan.seeds,
        "backend": plan.backend,
        "main_metric": next((m for m in METRICS if m in final_metrics(merged)), None),
        "n_points": len(plan.points) * len(plan.seeds),
        "n_finished": sum(_is_finished(points_dir, h, s) for h in plan.hashes for s in plan.seeds),
        "n_computed": computed,
        "n_failed": len(failed),
        "failed": [{"point": f.point, "error": f.error} for f in failed],
        "points": _grid_summary(merged, keys),
        "wall_time_s": wall,
    }
    text = dump_config(plan.base, extra={"backend": plan.backend, "seeds": plan.seeds,
                                         "sweep_grid": to_jsonable(plan.grid)})
    return SweepResult(merged, to_jsonable(summary), text, failed=failed, directory=out, computed=computed)


def _drop_unreadable_points(points_dir: Path) -> None:
    """A point file that cannot be read (truncated by a crash of the disk or the machine) is not finished work:
    both its files go, so the point is computed again."""
    for js in points_dir.glob("*.json"):
        nc = js.with_suffix(".nc")
        try:
            json.loads(js.read_text())
            xr.open_dataset(nc, engine=NETCDF_ENGINE).close()
        except (OSError, ValueError, TypeError, IndexError, KeyError):
            print(f"neurofa: {nc.name} is unreadable; its point will be computed again", file=sys.stderr)
            js.unlink(missing_ok=True)
            nc.unlink(missing_ok=True)


def _run_tasks(
    configs: list[Config],
    coords: list[dict[str, Any]],
    hashes: list[str],
    todo: list[list[int]],
    backend: str | Callable[..., xr.Dataset],
    cluster: str,
    workers: int | None,
    options: dict[str, Any],
    out: Path,
    n_total: int,
    n_done: int,
    progress: bool,
    threads: int = 1,
) -> tuple[int, list[FailedPoint]]:
    """Submit the unfinished points, follow them as they complete, return (points computed, failures)."""
    spiking = backend == "spiking"
    failed: list[FailedPoint] = []
    computed = 0
    points_dir = str(out / "points")
    with open_cluster(cluster, workers, options, out, threads) as (client, n_workers):
        if progress:
            _print_dashboard(client)
        if spiking:
            client.register_plugin(Brian2Preload())
            groups = [_structure_key(c) if seeds else "" for c, seeds in zip(configs, todo)]
            tasks = plan_structure_tasks(todo, groups, n_workers)
        else:
            tasks = [[item] for item in plan_tasks(todo, n_workers, batched=True)]
        futures = {}
        for task in tasks:
            items = [(to_dict(configs[i]), coords[i], hashes[i], seeds) for i, seeds in task]
            first_i, first_seeds = task[0]
            future = client.submit(run_points_task, items, backend, points_dir,
                                   key=f"neurofa-points-{hashes[first_i]}-{first_seeds[0]}-{len(task)}",
                                   retries=TASK_RETRIES, pure=False)
            futures[future] = task
        with tqdm(total=n_total, initial=n_done, unit="point", desc="sweep", disable=not progress) as bar:
            for future in as_completed(futures):
                task = futures[future]
                if future.status == "finished":
                    records = future.result()
                else:
                    error = future.exception() if future.status == "error" else future.status
                    records = [{"seed": s, "ok": False, "error": f"{type(error).__name__}: {error}", "item": k}
                               for k, (_, seeds) in enumerate(task) for s in seeds]
                for rec in records:
                    if rec["ok"]:
                        computed += not rec["skipped"]
                    else:
                        failed.append(FailedPoint({**coords[task[rec["item"]][0]], "seed": rec["seed"]}, rec["error"]))
                bar.update(len(records))
    return computed, failed


# ----------------------------------------------------------------------------------------------------------------
# figures


def sweep_figure(result: Result, directory: str | Path) -> list[Path]:
    """For each grid key, the final metrics (main metric first) against the key's values, mean ± SD over seeds;
    one line per combination of the other keys' values (pooled when there are more than eight)."""
    ds = result.dataset
    keys = ds.attrs.get("sweep_keys", [])
    if isinstance(keys, str):
        keys = json.loads(keys) if keys.startswith("[") else [keys]
    metrics = final_metrics(ds)
    metrics = {m: (metrics[m].mean("layer") if "layer" in metrics[m].dims else metrics[m]) for m in METRICS
               if m in metrics and np.isfinite(metrics[m].values).any()}
    if not keys or not metrics:
        return []
    plt = pyplot()
    directory = Path(directory)
    written = []
    for key in keys:
        others = [k for k in keys if k != key]
        combos = list(itertools.product(*(range(ds.sizes[k]) for k in others)))
        pooled = len(combos) > 8
        labels = [str(v) for v in ds[key].values]
        numeric = ds[key].dtype.kind in "iuf"
        x = ds[key].values.astype(float) if numeric else np.arange(len(labels))
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
        for ax, (name, da) in zip(axes[0], metrics.items()):
            for combo in ([None] if pooled else combos):
                sel = {} if combo is None else dict(zip(others, combo))
                part = da.isel(sel).transpose(key, ...)
                mean, sd = _mean_sd(part.values.reshape(len(x), -1))
                label = None if not others else ("pooled over " + ", ".join(others) if pooled else ", ".join(
                    f"{k}={ds[k].values[j]}" for k, j in sel.items()))
                ax.errorbar(x, mean, yerr=sd, marker="o", capsize=3, label=label)
            ax.set_xlabel(key)
            if not numeric:
                ax.set_xticks(x, labels)
            ylabel = name.replace("_", " ") + (" (deg, mean over hidden layers)" if name.startswith("angle") else "")
            ax.set_ylabel(ylabel)
            if others:
                ax.legend(frameon=False, fontsize=7)
        n_seeds = ds.sizes.get("seed", 1)
        fig.suptitle(f"{ds.attrs.get('name', 'sweep')}: mean ± SD over {n_seeds} seeds", fontsize=9)
        fig.tight_layout()
        written.append(save_figure(fig, directory / f"sweep_{key.replace('.', '_')}.png"))
    return written
