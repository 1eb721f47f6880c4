"""Nothing lost, nothing silent: output locations checked before anything runs, run directories that are complete or
visibly incomplete, divergence as a clear error with partial results, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurofa import cli
from neurofa.cli import main
from neurofa.config import ConfigError, load_config
from neurofa.rundir import MARKER, RunDirectory, is_complete

MODELS = Path(__file__).resolve().parents[1] / "models"
TINY = """\
name: tiny
network: {layers: [3, 4, 2]}
task: {name: teacher, n_train: 8, n_test: 4, t_pres: 1.0}
plasticity: {feedback: fa, eta_fw: [0.5, 0.1], eta_ip: [0.3], eta_pi: [0.5], tau_lo: 0.0}
simulation: {duration: 20.0, dt: 0.05, record_interval: 5.0, seeds: 2, scheme: instant}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any simulation fails the test: the error must come before."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("simulated although the run could not be written")

    monkeypatch.setattr(cli, "run", refuse)


# -- output locations, before anything runs ----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["existing file", "the config itself", "under a file", "/proc"])
def test_an_unwritable_out_is_refused_before_the_simulation(where: str, tiny: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            no_simulation: None) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    out = {"existing file": a_file, "the config itself": tiny, "under a file": a_file / "run",
           "/proc": Path("/proc/neurofa-test")}[where]
    assert main(["run", str(tiny), "--out", str(out)]) == 2
    assert "--out" in one_line_error(capsys)


def test_an_existing_run_is_never_overwritten_silently(tiny: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    first = (out / "summary.json").read_text()
    capsys.readouterr()
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--set", "simulation.seeds=1"]) == 2
    assert "already holds a run" in one_line_error(capsys)
    assert (out / "summary.json").read_text() == first
    # --overwrite replaces it whole: no figure of the old run stays beside the new results
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--no-plots", "--overwrite",
                 "--set", "simulation.seeds=1"]) == 0
    assert not (out / "figures").exists()
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tiny: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with RunDirectory.open(out, command="test"):
        assert main(["run", str(tiny), "--out", str(out), "--quiet", "--overwrite"]) == 2
        assert "being written by" in one_line_error(capsys)
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--overwrite"]) == 0


def test_the_directory_is_marked_incomplete_until_the_summary_is_written(tiny: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    seen = {}
    real_run = cli.run

    def spy(*args: object, **kwargs: object) -> object:
        seen["during"] = sorted(p.name for p in out.iterdir())
        return real_run(*args, **kwargs)

    monkeypatch.setattr(cli, "run", spy)
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    assert MARKER in seen["during"] and "summary.json" not in seen["during"] and "config.yaml" in seen["during"]
    assert is_complete(out) and not (out / MARKER).exists()


def test_files_get_the_umask_permissions(tiny: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert main(["run", str(tiny), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    finally:
        os.umask(old)
    for name in ("summary.json", "results.nc", "config.yaml", "figures/loss.png"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_sigkill_at_any_moment_leaves_an_absent_complete_or_marked_directory(tiny: Path, tmp_path: Path) -> None:
    """Kill ``neurofa run`` at spread-out moments of its life, writing included; each time the directory is
    absent, complete and consistent, or marked incomplete without a summary; the next run leaves no temporaries."""
    command = [sys.executable, "-m", "neurofa.cli", "run", str(tiny), "--quiet", "--overwrite"]
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(tmp_path / "timing")], check=True, capture_output=True)
    whole = time.perf_counter() - start
    states = set()
    for k, fraction in enumerate(np.linspace(0.3, 1.0, 8)):
        out = tmp_path / f"killed{k}"
        proc = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]:
            states.add("absent")  # nothing yet, or only the lock: no run here (a next run needs no --overwrite)
        elif is_complete(out):
            summary = json.loads((out / "summary.json").read_text())
            ds = xr.load_dataset(out / "results.nc", engine="scipy")
            assert summary["seeds"] == [int(s) for s in ds["seed"].values]
            assert "duration: 20.0" in (out / "config.yaml").read_text()
            states.add("complete")
        else:
            assert (out / MARKER).exists() and not (out / "summary.json").exists()
            states.add("incomplete")
        subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
        assert is_complete(out) and not list(out.glob(".*.tmp")) and not (out / MARKER).exists()
    assert "incomplete" in states or "absent" in states, states


# -- divergence ---------------------------------------------------------------------------------------------------

def test_a_diverging_rate_run_exits_4_naming_seed_time_and_quantity(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["run", str(MODELS / "quickstart.yaml"), "--out", str(out), "--quiet", "--no-plots",
                 "--set", "plasticity.eta_bw=[1e30]", "--set", "simulation.duration=200"])
    assert code == 4
    err = one_line_error(capsys)
    assert "seed 0, 1, 2" in err and "t = 40 ms" in err and "apical weights" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] and summary["diverged_time"] == 40.0 and summary["diverged_seeds"] == [0, 1, 2]
    assert xr.load_dataset(out / "results.nc", engine="scipy").sizes["time"] == 5  # partial results are kept


def test_a_diverging_discrete_time_run_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import TINY_MLP_YAML

    cfg = tmp_path / "mlp.yaml"
    cfg.write_text(TINY_MLP_YAML)
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--set", "training.lr=1e300"]) == 4
    assert "epochs" in one_line_error(capsys)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["diverged"]


def test_saturation_is_a_warning_in_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(MODELS / "yinyang_mlp_fa.yaml"), "--out", str(out), "--quiet", "--no-plots",
                 "--set", "training.lr=1e300", "--set", "training.epochs=2", "--seeds", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert any("float limit" in w for w in summary["warnings"]) and not summary["diverged"]
    assert "warning" in capsys.readouterr().err


def test_a_diverging_spiking_run_exits_4_with_its_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("brian2")
    out = tmp_path / "run"
    code = main(["run", str(MODELS / "quickstart.yaml"), "--backend", "spiking", "--out", str(out), "--quiet",
                 "--no-plots", "--seeds", "1", "--set", "plasticity.eta_bw=[1e30]", "--set", "simulation.duration=40",
                 "--set", "simulation.record_interval=10"])
    assert code == 4
    err = one_line_error(capsys)
    assert "seed 0" in err and "backprojections B" in err and " ms " in err
    assert json.loads((out / "summary.json").read_text())["diverged"]


# -- configurations -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("simulation: {duration: 20}\nsimulation: {dt: 0.05}\n", "duplicate key 'simulation'"),
    ("network:\n  layers: [3, 4, 2]\n  layers: [3, 5, 2]\n", "duplicate key 'layers'"),
    ("- a\n- b\n", "mapping"),
])
def test_malformed_files_are_config_errors(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_binary_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="not a text file") as err:
        load_config(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("overrides", "key"), [
    ({"task.n_train": 0}, "task.n_train"),
    ({"task.input_low": 2.0, "task.input_high": 1.0}, "task.input_low"),
    ({"simulation.dt": 50.0}, "simulation.dt"),
    ({"simulation.duration": 0.01, "simulation.dt": 0.05}, "simulation.dt = 0.05 is invalid: must not exceed "
                                                           "simulation.duration"),
    ({"task.name": "bars", "network.layers": [9, 4, 3], "task.target_low": 1.0, "task.target_high": 0.1},
     "task.target_low"),
])
def test_impossible_values_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(load_config({"network": {"layers": [3, 4, 2]}, "task": {"name": "teacher"}}), overrides)


def test_numbers_in_set_parse_as_yaml_numbers() -> None:
    cfg = load_config({}, ["plasticity.eta_bw=1e6", "simulation.duration=2e3", "plasticity.eta_fw=5"])
    assert cfg.plasticity.eta_bw == [1e6] and cfg.simulation.duration == 2000.0 and cfg.plasticity.eta_fw == [5.0]


def test_a_run_too_long_or_too_large_is_refused_with_the_estimate(tiny: Path, capsys: pytest.CaptureFixture[str],
                                                                no_simulation: None) -> None:
    assert main(["run", str(tiny), "--set", "simulation.dt=1e-9"]) == 2
    err = one_line_error(capsys)
    assert "time steps" in err and "simulation.max_steps" in err
    assert main(["run", str(tiny), "--set", "simulation.duration=2e9", "--set", "simulation.record_interval=1",
                 "--set", "simulation.dt=1", "--set", "task.t_pres=1", "--set", "simulation.max_steps=1e12"]) == 2
    assert "GiB" in one_line_error(capsys)


def test_check_validates_without_running(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         no_simulation: None) -> None:
    assert main(["run", str(tiny), "--check", "--out", str(tmp_path / "run")]) == 0
    assert "time steps" in capsys.readouterr().out and not (tmp_path / "run").exists()


def test_compare_scales_that_are_not_numbers(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tiny), "--scales", "abc"]) == 2
    assert "--scales" in one_line_error(capsys)


def test_plot_of_a_corrupt_results_file(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--no-plots"]) == 0
    (out / "results.nc").write_bytes((out / "results.nc").read_bytes()[:200])
    capsys.readouterr()
    assert main(["plot", str(out)]) == 2
    err = one_line_error(capsys)
    assert "not a readable NetCDF file" in err and "netcdf4" not in err.lower().replace("netcdf file", "")


@pytest.mark.parametrize("args", [["--workers", "0"], ["--cluster", "foo"]])
def test_bad_sweep_options_leave_nothing_behind(args: list[str], tiny: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", str(tiny), "--grid", "plasticity.eta_pi=0.5,1", "--out", str(out), *args]) == 2
    one_line_error(capsys)
    assert not out.exists()


def test_a_truncated_sweep_point_is_computed_again(tmp_path: Path) -> None:
    from conftest import TINY_MLP_YAML

    from neurofa.sweep import sweep

    cfg = load_config(__import__("yaml").safe_load(TINY_MLP_YAML))
    out = tmp_path / "sweep"
    first = sweep(cfg, {"training.lr": [0.05, 0.1]}, seeds=[0], workers=1, out=out, progress=False, plots=False)
    nc = sorted((out / "points").glob("*.nc"))[0]
    nc.write_bytes(nc.read_bytes()[:100])
    again = sweep(cfg, {"training.lr": [0.05, 0.1]}, seeds=[0], workers=1, out=out, progress=False, plots=False)
    assert again.computed == 1 and not again.failed
    xr.testing.assert_allclose(again.dataset["loss"], first.dataset["loss"])
