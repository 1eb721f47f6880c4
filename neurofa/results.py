"""Results: one type for every backend, written atomically as a run directory.

A run directory holds ``config.yaml`` (the resolved configuration with provenance), ``results.nc`` (an
``xarray.Dataset`` with dims such as ``seed``, ``time``, ``layer``), ``spikes.nc`` for spiking runs that record
spikes (:mod:`neurofa.spikes`), ``summary.json`` (final figures with stable keys, see the README) and
``figures/``. Every file is written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from neurofa.atomic import atomic_write, atomic_write_text
from neurofa.config import ConfigError
from neurofa.export import to_neo
from neurofa.plotting import plot_run
from neurofa.rundir import RunDirectory, is_complete

__all__ = ["Result", "atomic_write", "atomic_write_text", "to_jsonable", "merge_results", "summary_from_dataset",
           "read_netcdf"]

NETCDF_ENGINE: Literal["scipy"] = "scipy"
#: the spike dataset of a run directory (:mod:`neurofa.spikes`)
SPIKES = "spikes.nc"


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays to plain Python; NaN to None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def summary_from_dataset(ds: xr.Dataset) -> dict[str, Any]:
    """The standard ``summary.json`` keys derived from a result dataset (both backends).

    - ``angle_B_WT_final`` / ``angle_B_RHS_final``: last recorded angle per hidden layer, mean over seeds;
    - ``angle_B_WT_final_per_seed``: the same per seed (list of lists, seed × layer);
    - ``loss_final``: mean over seeds of the last recorded loss; ``test_accuracy`` and ``test_accuracy_per_seed``
      where a test set exists; ``seeds``.
    """
    out: dict[str, Any] = {"seeds": [int(s) for s in ds["seed"].values]} if "seed" in ds.coords else {}
    for name in ("angle_B_WT", "angle_B_RHS"):
        if name in ds and "time" in ds[name].dims:
            last = ds[name].isel(time=-1)
            out[f"{name}_final"] = last.mean("seed").values.tolist()
            if name == "angle_B_WT":
                out[f"{name}_final_per_seed"] = last.transpose("seed", ...).values.tolist()
    if "loss" in ds and "time" in ds["loss"].dims:
        out["loss_final"] = float(ds["loss"].isel(time=-1).mean())
    for name in ("test_accuracy", "test_loss", "train_accuracy"):
        if name in ds:
            out[name] = float(ds[name].mean())
            out[f"{name}_per_seed"] = ds[name].values.tolist()
    return to_jsonable(out)


@dataclass
class Result:
    """The outcome of a run: an :class:`xarray.Dataset`, a summary dict and the configuration text.

    ``dataset`` carries dims ``seed``, ``time`` (ms for microcircuits, update steps or epochs for discrete-time
    networks; see ``dataset.time.attrs['units']``) and ``layer`` (hidden-layer index, 1-based).
    """

    dataset: xr.Dataset
    summary: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    #: the recorded spikes of a spiking run with ``spiking.record_spikes`` (:mod:`neurofa.spikes`), else None
    spikes: xr.Dataset | None = None

    # -- views -------------------------------------------------------------------------------------------------
    def alignment_angles(self, kind: str = "B_WT") -> xr.DataArray:
        """∠(B_ℓ, W_{ℓ+1}ᵀ) (``kind='B_WT'``) or ∠(B_ℓ, φ'W_{ℓ+1}ᵀφ') (``'B_RHS'``) over time."""
        name = f"angle_{kind}"
        if name not in self.dataset:
            raise KeyError(f"this result has no {name!r}; variables: {', '.join(map(str, self.dataset.data_vars))}")
        return self.dataset[name]

    def __getitem__(self, key: str) -> xr.DataArray:
        return self.dataset[key]

    def to_neo(self) -> Any:
        """The recorded spikes and rates as a ``neo.Block`` (:func:`neurofa.export.to_neo`; needs ``neo``)."""
        return to_neo(self)

    # -- I/O ---------------------------------------------------------------------------------------------------
    def save(self, directory: str | Path, plots: bool | Callable[[Result, Path], object] = True,
             overwrite: bool = False) -> Path:
        """Write the run directory: ``config.yaml``, ``results.nc``, ``figures/`` and, last, ``summary.json``.

        The directory is prepared by :class:`neurofa.rundir.RunDirectory` (an existing run is refused unless
        ``overwrite``); it is marked incomplete until every file is in place."""
        rundir = RunDirectory.open(directory, command="save", overwrite=overwrite, option="directory")
        try:
            self.write(rundir, plots)
        finally:
            rundir.release()
        return rundir.path

    def write(self, rundir: RunDirectory, plots: bool | Callable[[Result, Path], object] = True) -> Path:
        """Write this result into a prepared run directory and mark it complete (:meth:`RunDirectory.finish`).

        ``plots``: the standard figures (True), none (False), or a function ``figures(result, directory)``."""
        directory = rundir.path
        if self.config_text:
            atomic_write_text(directory / "config.yaml", self.config_text)
        ds = self.dataset.copy()
        ds.attrs = {k: (json.dumps(to_jsonable(v)) if not isinstance(v, (str, int, float)) else v)
                    for k, v in ds.attrs.items()}
        atomic_write(directory / "results.nc", lambda p: ds.to_netcdf(p, engine=NETCDF_ENGINE))
        if self.spikes is not None:
            spikes = self.spikes
            atomic_write(directory / SPIKES, lambda p: spikes.to_netcdf(p, engine=NETCDF_ENGINE))
        if callable(plots):
            plots(self, directory / "figures")
        elif plots:
            plot_run(self.dataset, directory / "figures", self.spikes)
        # summary last, then the marker goes: only now does the directory look complete
        atomic_write_text(directory / "summary.json", json.dumps(to_jsonable(self.summary), indent=2) + "\n")
        rundir.finish()
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Result:
        """The result in a run directory (FileNotFoundError without ``results.nc``, ConfigError if unreadable)."""
        directory = Path(directory)
        nc = directory / "results.nc"
        if not nc.exists():
            raise FileNotFoundError(f"{directory}: not a run directory (no results.nc)")
        ds = read_netcdf(nc)
        summary_path = directory / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        cfg_path = directory / "config.yaml"
        spikes = read_netcdf(directory / SPIKES) if (directory / SPIKES).exists() else None
        return cls(ds, summary, cfg_path.read_text() if cfg_path.exists() else "", spikes)

    @staticmethod
    def is_complete(directory: str | Path) -> bool:
        """A run directory is complete when ``results.nc`` and ``summary.json`` exist and it is not marked
        incomplete (:func:`neurofa.rundir.is_complete`)."""
        return is_complete(directory)


def read_netcdf(path: Path) -> xr.Dataset:
    """Load a NetCDF file written by neurofa; a truncated or corrupt file is a one-line ConfigError naming it."""
    try:
        return xr.load_dataset(path, engine=NETCDF_ENGINE)
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise ConfigError(f"{path}: not a readable NetCDF file (truncated or corrupt: {exc})") from None


def merge_results(points: Iterable[tuple[dict[str, Any], xr.Dataset]]) -> xr.Dataset:
    """Merge sweep points ``(coords, dataset)`` into one dataset with the grid keys as dimensions."""
    items = list(points)
    if not items:
        raise ValueError("no points to merge")
    keys = list(items[0][0])
    pieces = []
    for coords, ds in items:
        ds = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype.kind not in "fiub"])
        pieces.append(ds.expand_dims({k: [coords[k]] for k in keys}))
    merged = xr.combine_by_coords(pieces, combine_attrs="drop_conflicts", join="outer", data_vars="all")
    assert isinstance(merged, xr.Dataset)
    return merged
