"""Recorded spikes and rates in the formats of the field: a Neo ``Block`` and an NWB file.

Both need the optional packages of the ``io`` extra (``pip install 'neurofa[io]'``): ``neo`` for
:func:`to_neo`, ``pynwb`` for :func:`write_nwb`. Exporters are registered in :data:`EXPORTERS` by format name
(``neurofa export RUN_DIR --format nwb``).

Neo (:func:`to_neo`): one ``Segment`` per seed; in it one ``SpikeTrain`` per recorded cell (times in ms, from the
first recorded window's start to the last one's stop), annotated with ``population``, ``kind``, ``layer``, ``index``
and ``recorded_windows``; and, for runs with ``simulation.record_detail``, the recorded rates as ``AnalogSignal``s in
Hz (``rate_pyr``, ``rate_int``: spike count / window; ``phi_pyr``, ``phi_int``: the cells' instantaneous rates
ν_max φ(ŭ) averaged over the window), one channel per cell, a sample at t being the mean over [t, t + Δ). The
block has one ``Group`` per population holding its cells' trains of every seed.

NWB (:func:`write_nwb`): the ``Units`` table has one row per seed and recorded cell, with spike times in seconds,
the recorded windows as ``obs_intervals`` and the columns ``seed``, ``population``, ``kind``, ``layer`` and
``index`` and the time resolution dt; the configuration (``config.yaml``) is the file's ``notes``, the provenance
(neurofa, Brian2 and NumPy versions, backend, seeds) its ``data_collection``. The ``Subject`` describes the simulated
network (species "in silico", sex "O", age 0), which NWB requires of every file.
"""

from __future__ import annotations

import datetime
import importlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurofa._version import __version__
from neurofa.atomic import atomic_write
from neurofa.config import ConfigError, yaml_load
from neurofa.spikes import spike_trains, windows_of

if TYPE_CHECKING:
    from neurofa.results import Result

__all__ = ["to_neo", "write_nwb", "EXPORTERS", "export"]


def _optional(module: str) -> Any:
    """Import an optional package of the ``io`` extra, or a one-line ConfigError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"exporting needs the package {module!r}: pip install 'neurofa[io]'") from None


def _spikes(result: Result) -> Any:
    if result.spikes is None:
        raise ConfigError("this run has no recorded spikes: run the spiking backend with spiking.record_spikes "
                          "(e.g. --set spiking.record_spikes=all)")
    return result.spikes


#: the dataset's rate variables exported as analog signals (fractions of ν_max, exported in Hz)
RATE_SIGNALS = ("rate_pyr", "rate_int", "phi_pyr", "phi_int")


def to_neo(result: Result) -> Any:
    """The recorded spikes (and rates, with ``record_detail``) of ``result`` as a ``neo.Block`` (see the module)."""
    neo = _optional("neo")
    pq = _optional("quantities")
    spikes = _spikes(result)
    windows = windows_of(spikes)
    t_start, t_stop = windows[0][0], windows[-1][1]
    ds = result.dataset
    nu_max = float(spikes.attrs["nu_max"])
    block = neo.Block(name=str(ds.attrs.get("name", "neurofa")), description="neurofa spiking run",
                      neurofa_version=__version__)
    populations = list(dict.fromkeys(spikes["cell_population"].values.tolist()))
    groups = {p: neo.Group(name=p) for p in populations}
    cells = [dict(population=str(p), kind=str(k), layer=int(la), index=int(i)) for p, k, la, i in zip(
        spikes["cell_population"].values, spikes["cell_kind"].values, spikes["cell_layer"].values,
        spikes["cell_index"].values)]
    for seed in json.loads(spikes.attrs["seeds"]):
        segment = neo.Segment(name=f"seed {seed}", seed=int(seed))
        for cell, times in zip(cells, spike_trains(spikes, seed)):
            train = neo.SpikeTrain(times * pq.ms, t_start=t_start * pq.ms, t_stop=t_stop * pq.ms,
                                   name=f"{cell['population']}[{cell['index']}]", recorded_windows=windows, **cell)
            segment.spiketrains.append(train)
            groups[cell["population"]].spiketrains.append(train)
        for name in RATE_SIGNALS:
            if name in ds and "seed" in ds[name].dims:
                segment.analogsignals.append(_rate_signal(neo, pq, ds, name, seed, nu_max))
        block.segments.append(segment)
    block.groups.extend(groups.values())
    return block


def _rate_signal(neo: Any, pq: Any, ds: Any, name: str, seed: int, nu_max: float) -> Any:
    """One recorded rate variable of one seed in Hz, a channel per cell, samples at the windows' starts."""
    values = ds[name].sel(seed=seed).transpose("time", ...).values * nu_max
    times = ds["time"].values
    period = float(times[1] - times[0]) if len(times) > 1 else float(times[0])
    layer_coord = {"rate_pyr": "pyr_layer", "phi_pyr": "pyr_layer", "rate_int": "int_layer",
                   "phi_int": "int_layer"}[name]
    layers = ds[layer_coord].values if layer_coord in ds.coords else np.zeros(values.shape[1], int)
    return neo.AnalogSignal(values, units=pq.Hz, sampling_period=period * pq.ms,
                            t_start=(float(times[0]) - period) * pq.ms, name=name,
                            array_annotations={"layer": np.asarray(layers)},
                            description="mean over [t, t + sampling_period)")


def _provenance(result: Result) -> dict[str, Any]:
    """The exporting environment's versions, the run's summary keys and, under ``run``, the provenance the run
    recorded in its ``config.yaml`` (the versions and git commit that simulated it)."""
    out: dict[str, Any] = {"neurofa": __version__}
    for module in ("brian2", "numpy"):
        try:
            out[module] = importlib.import_module(module).__version__
        except ImportError:  # pragma: no cover - brian2 and numpy are dependencies
            continue
    out.update({k: result.summary[k] for k in ("backend", "seeds", "wall_time_s") if k in result.summary})
    recorded = yaml_load(result.config_text) if result.config_text else None
    if isinstance(recorded, dict) and isinstance(recorded.get("provenance"), dict):
        out["run"] = recorded["provenance"]
    return out


def write_nwb(result: Result, path: str | Path) -> Path:
    """Write the recorded spikes of ``result`` to the NWB file ``path`` (atomically; see the module)."""
    pynwb = _optional("pynwb")
    spikes = _spikes(result)
    windows = np.asarray(windows_of(spikes), dtype=float) / 1000.0
    name = str(result.dataset.attrs.get("name", "neurofa"))
    nwb = pynwb.NWBFile(
        session_description=f"neurofa spiking microcircuit {name!r}: simulated spikes of every seed",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime.now(datetime.UTC),
        experiment_description="Simulated dendritic cortical microcircuit (Brian2) learning with local plasticity",
        notes=result.config_text or "(no configuration recorded)",
        data_collection=json.dumps(_provenance(result), default=str),
        source_script=f"neurofa {__version__}",
        source_script_file_name="neurofa",
        keywords=["simulation", "spiking neural network", "dendritic microcircuit", "synaptic plasticity"],
        subject=pynwb.file.Subject(subject_id=f"neurofa-{name}", species="in silico", sex="O", age="P0D",
                                   description="a simulated network, not an animal (sex 'O', other; age 0: the "
                                               "network exists from the start of the run); every seed is an "
                                               "independent network with its own initial weights and input order"),
    )
    nwb.units = pynwb.misc.Units(name="units", resolution=float(spikes.attrs["dt"]) / 1000.0,
                                 description="simulated cells of every seed; spike times in s since the run began")
    columns = {"seed": "the simulation's seed (an independent network)",
               "population": "population name (P0 input, P1 ... pyramidal layers, I1 ... interneurons)",
               "kind": "input, hidden, output or interneuron", "layer": "layer index",
               "index": "index of the cell in its population"}
    for column, description in columns.items():
        nwb.add_unit_column(name=column, description=description)
    cells = list(zip(spikes["cell_population"].values, spikes["cell_kind"].values, spikes["cell_layer"].values,
                     spikes["cell_index"].values))
    for seed in json.loads(spikes.attrs["seeds"]):
        for (population, kind, layer, index), times in zip(cells, spike_trains(spikes, seed)):
            nwb.add_unit(spike_times=times / 1000.0, obs_intervals=windows, seed=int(seed),
                         population=str(population), kind=str(kind), layer=int(layer), index=int(index))

    def write(tmp: Path) -> None:
        named = tmp.with_name(tmp.name + ".nwb")  # pynwb expects the extension
        try:
            with pynwb.NWBHDF5IO(str(named), "w") as io:
                io.write(nwb)
            named.replace(tmp)
        finally:
            named.unlink(missing_ok=True)

    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):  # left by an export that was killed
        stale.unlink(missing_ok=True)
    atomic_write(path, write)
    return path


#: format name → writer(result, directory) → the file written
EXPORTERS: dict[str, Callable[[Result, Path], Path]] = {
    "nwb": lambda result, directory: write_nwb(result, directory / "spikes.nwb"),
}


def export(result: Result, directory: str | Path, fmt: str) -> Path:
    """Export ``result`` (loaded from run directory ``directory``) in format ``fmt`` of :data:`EXPORTERS`."""
    if fmt not in EXPORTERS:
        raise ConfigError(f"--format = {fmt!r} is not allowed; allowed: {', '.join(EXPORTERS)}")
    return EXPORTERS[fmt](result, Path(directory))
