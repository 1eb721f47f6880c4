"""Recorded spikes (``spiking.record_spikes``): they change nothing else, they are the spikes neurofa counts, and
they reach Neo, Elephant, NWB and the raster figure intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurofa as nf
from neurofa.cli import main
from neurofa.config import ConfigError, load_config
from neurofa.estimate import check_bounds
from neurofa.export import write_nwb
from neurofa.plotting import raster_figure
from neurofa.results import Result
from neurofa.runner import estimate
from neurofa.spikes import spike_counts, spike_trains, windows_of
from neurofa.spiking import SPIKE_BYTES

SEEDS = [0, 1]
WINDOW = 5000.0  # ms: the last record window of the run below


def _cfg(**spiking: Any) -> nf.Config:
    """The spiking PAL case of tests/test_golden.py: 4-8-4, 20 s of spiking time, records every 5 s."""
    return load_config({
        "name": "spikes", "network": {"layers": [4, 8, 4]},
        "task": {"name": "backprojection", "n_train": 20, "t_pres": 1.0},
        "simulation": {"duration": 400.0, "record_interval": 100.0, "record_detail": True},
        "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [500.0]},
        "spiking": {"device": "cpp_standalone", "report": False, "sigma": 6.0, **spiking},
    })


@pytest.fixture(scope="module")
def runs() -> tuple[nf.Result, nf.Result]:
    plain = nf.run(_cfg(), backend="spiking", seeds=SEEDS, progress=False)
    recorded = nf.run(_cfg(record_spikes="all", record_spikes_windows=[[-WINDOW, 0]]), backend="spiking",
                      seeds=SEEDS, progress=False)
    return plain, recorded


@pytest.fixture(scope="module")
def saved(runs: tuple[nf.Result, nf.Result], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runs[1].save(tmp_path_factory.mktemp("spikes") / "run", plots=False)


def test_recording_spikes_changes_nothing_else(runs: tuple[nf.Result, nf.Result]) -> None:
    plain, recorded = runs
    assert plain.spikes is None and recorded.spikes is not None
    for name in plain.dataset.data_vars:
        np.testing.assert_array_equal(plain.dataset[name].values, recorded.dataset[name].values, err_msg=name)


def test_the_recorded_spikes_are_those_neurofa_counts(runs: tuple[nf.Result, nf.Result]) -> None:
    """Per cell, the Neo block's spike count in the last record window equals the cell's own spike counter n_spk
    over that window (rate_pyr, rate_int: n_spk increments / (ν_max · window)), exactly."""
    recorded = runs[1]
    spikes = recorded.spikes
    assert spikes is not None
    t_end = float(recorded.dataset["time"].values[-1])
    assert windows_of(spikes) == [[t_end - WINDOW, t_end]]
    block = recorded.to_neo()
    assert [seg.annotations["seed"] for seg in block.segments] == SEEDS
    nu_window = float(spikes.attrs["nu_max"]) / 1000.0 * WINDOW
    kinds = spikes["cell_kind"].values
    for seg, seed in zip(block.segments, SEEDS):
        counts = np.array([len(train) for train in seg.spiketrains])
        last = recorded.dataset.sel(seed=seed).isel(time=-1)
        pyramidal = np.rint(last["rate_pyr"].values * nu_window).astype(int)
        inter = np.rint(last["rate_int"].values * nu_window).astype(int)
        np.testing.assert_array_equal(counts[(kinds == "hidden") | (kinds == "output")], pyramidal)
        np.testing.assert_array_equal(counts[kinds == "interneuron"], inter)
        assert counts[kinds == "input"].sum() > 0
        train = seg.spiketrains[5]
        assert train.annotations["population"] == "P1" and train.annotations["layer"] == 1
        assert train.annotations["index"] == 1 and train.annotations["kind"] == "hidden"
        steps = np.asarray(train.times.rescale("ms").magnitude) / 0.1
        np.testing.assert_allclose(steps, np.rint(steps), atol=1e-6)  # on the time grid
        assert np.all(np.diff(steps) > 0)
    assert [g.name for g in block.groups] == ["P0", "P1", "P2", "I1"]
    assert len(block.groups[1].spiketrains) == 8 * len(SEEDS)
    assert {a.name for a in block.segments[0].analogsignals} == {"rate_pyr", "rate_int", "phi_pyr", "phi_int"}


def test_elephant_rates_agree_with_the_cells_rates_within_poisson_error(runs: tuple[nf.Result, nf.Result]) -> None:
    """Elephant's mean firing rate of each cell against ν_max times the cell's mean instantaneous rate φ(ŭ) over
    the window (what the Poisson generator was asked to produce): z-scores of a Poisson count."""
    statistics = pytest.importorskip("elephant.statistics")
    recorded = runs[1]
    block = recorded.to_neo()
    z = []
    for seg, seed in zip(block.segments, SEEDS):
        last = recorded.dataset.sel(seed=seed).isel(time=-1)
        expected_hz = np.concatenate([last["phi_pyr"].values, last["phi_int"].values]) * 200.0
        trains = [t for t in seg.spiketrains if t.annotations["kind"] != "input"]
        measured = np.array([float(statistics.mean_firing_rate(t).rescale("Hz").magnitude) for t in trains])
        expected_count = expected_hz * WINDOW / 1000.0
        z += list((measured * WINDOW / 1000.0 - expected_count) / np.sqrt(expected_count))
    z = np.asarray(z)
    assert np.abs(z).max() < 4.5, z
    assert 0.3 < np.mean(z**2) < 2.0  # Poisson-like dispersion (a Bernoulli per step is slightly narrower)


def test_nwb_file_reopens_with_the_same_spikes_and_passes_the_inspector(runs: tuple[nf.Result, nf.Result],
                                                                       tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    inspector = pytest.importorskip("nwbinspector")
    recorded = runs[1]
    assert recorded.spikes is not None
    path = write_nwb(recorded, tmp_path / "spikes.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == len(SEEDS) * recorded.spikes.sizes["cell"]
        for seed in SEEDS:
            mine = units[units["seed"] == seed]
            for (_, row), times in zip(mine.iterrows(), spike_trains(recorded.spikes, seed)):
                np.testing.assert_allclose(np.asarray(row["spike_times"]) * 1000.0, times, rtol=1e-12)
        assert list(units["population"].unique()) == ["P0", "P1", "P2", "I1"]
        assert "plasticity" in nwb.notes and json.loads(nwb.data_collection)["neurofa"] == nf.__version__
    critical = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(path))
                if m.importance.name == "CRITICAL"]
    assert not critical, critical


def test_export_command_writes_the_nwb_file_and_refuses_a_run_without_spikes(
        saved: Path, runs: tuple[nf.Result, nf.Result], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pynwb")
    stale = saved / ".spikes.nwb.abc123.tmp.nwb"  # what an export killed while writing leaves
    stale.write_bytes(b"partial")
    assert main(["export", str(saved), "--format", "nwb"]) == 0
    assert (saved / "spikes.nwb").stat().st_size > 0 and not stale.exists()
    loaded = Result.load(saved)
    assert loaded.spikes is not None and loaded.spikes.sizes == runs[1].spikes.sizes  # type: ignore[union-attr]
    plain = runs[0].save(tmp_path / "plain", plots=False)
    assert main(["export", str(plain)]) == 2
    assert "no recorded spikes" in capsys.readouterr().err


def test_the_raster_shows_every_recorded_spike_of_the_first_seed(saved: Path) -> None:
    result = Result.load(saved)
    assert result.spikes is not None
    fig = raster_figure(result.spikes)
    populations = 4
    points = sum(len(ax.collections[0].get_offsets()) for ax in fig.axes[:populations] if ax.collections)
    assert points == int(spike_counts(result.spikes, SEEDS[0]).sum())
    assert main(["plot", str(saved)]) == 0
    assert (saved / "figures" / "spikes.png").exists()


@pytest.mark.parametrize("spiking, message", [
    ({"record_spikes": ["dendrites"]}, "spiking.record_spikes[0] = 'dendrites' is not allowed; allowed: all"),
    ({"record_spikes": "all", "record_spikes_windows": [[5000, 1000]]}, "needs 0 ≤ start < stop"),
    ({"record_spikes": "all", "record_spikes_windows": [[0, 1e9]]}, "needs 0 ≤ start < stop ≤ 20000 ms"),
    ({"record_spikes": "all", "record_spikes_windows": [[-1000]]}, "give [start, stop] in ms"),
    ({"record_spikes_windows": [[0, 1000]]}, "spiking.record_spikes is empty"),
])
def test_bad_spike_recording_is_a_one_line_error(spiking: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        estimate(_cfg(**spiking), "spiking", 1)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_memory_estimate_bounds_the_recorded_spikes() -> None:
    """Every recorded cell at ν_max through the recorded time: 20 cells × 0.2/ms × 5000 ms per seed."""
    base = estimate(_cfg(), "spiking", 2).bytes
    windowed = estimate(_cfg(record_spikes="all", record_spikes_windows=[[-WINDOW, 0]]), "spiking", 2).bytes
    hidden = estimate(_cfg(record_spikes="hidden"), "spiking", 2).bytes
    assert windowed - base == pytest.approx(SPIKE_BYTES * 2 * 20 * 0.2 * WINDOW)
    assert hidden - base == pytest.approx(SPIKE_BYTES * 2 * 8 * 0.2 * 20000.0)
    one = estimate(_cfg(), "spiking", 1).bytes
    limit = {"simulation.max_memory_gb": (one + SPIKE_BYTES * 8 * 0.2 * 20000.0 / 2) / 2**30}
    check_bounds(load_config(_cfg(), limit), estimate(load_config(_cfg(), limit), "spiking", 1))  # fits …
    with pytest.raises(ConfigError, match="max_memory_gb"):  # … not with them, before anything runs
        nf.run(load_config(_cfg(record_spikes="hidden"), limit), backend="spiking", seeds=1)


def test_one_window_given_flat_is_that_window() -> None:
    """``--set 'spiking.record_spikes_windows=[-5000,0]'`` means the one window [-5000, 0], as a scalar for a
    per-layer list means every layer."""
    cfg = load_config(_cfg(record_spikes="all"), ["spiking.record_spikes_windows=[-5000,0]"])
    assert cfg.spiking.record_spikes_windows == [[-5000.0, 0.0]]
    assert load_config(cfg, {"spiking.record_spikes_windows": [[0, 1000], [-1000, 0]]}).spiking \
        .record_spikes_windows == [[0.0, 1000.0], [-1000.0, 0.0]]


def test_a_sweep_refuses_to_record_spikes_it_would_not_keep(tmp_path: Path) -> None:
    from neurofa.sweep import sweep

    with pytest.raises(ConfigError, match="not allowed in a sweep") as info:
        sweep(_cfg(record_spikes="all"), {"plasticity.sigma": [0.1, 0.2]}, backend="spiking", seeds=1,
              out=tmp_path / "sweep")
    assert "\n" not in str(info.value) and not (tmp_path / "sweep").exists()
