"""The ``neurofa`` command: exit codes, one-line user errors, and whole runs written to a run directory."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neurofa import __version__
from neurofa.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "theory", "compare", "sweep", "plot"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_misspelled_key_is_a_one_line_error_with_a_suggestion(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("plasticity:\n  eta_bww: 20\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "plasticity.eta_bww" in err and "eta_bw" in err and str(cfg) in err
    assert not (tmp_path / "out").exists()


def test_bad_override_value_names_the_key_and_allowed_values(tmp_path, capsys):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("name: ok\n")
    assert main(["run", str(cfg), "--set", "plasticity.feedback=pall"]) == 2
    err = capsys.readouterr().err
    assert "plasticity.feedback" in err and "'pal'" in err


def test_missing_file_and_missing_run_directory(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_unknown_theory_name_suggests_the_close_one(capsys):
    assert main(["theory", "song2012"]) == 2
    assert "song2021" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("network:\n  layers: [5]\n")
    proc = subprocess.run([sys.executable, "-m", "neurofa.cli", "--debug", "run", str(cfg)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_run_writes_a_complete_run_directory_and_plot_redraws_it(tmp_path, capsys):
    pytest.importorskip("neurofa.rate.microcircuit")
    out = tmp_path / "run"
    code = main(["run", str(MODELS / "pal_backprojections.yaml"), "--seeds", "2", "--quiet", "--out", str(out),
                 "--set", "simulation.duration=20", "--set", "simulation.record_interval=5"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert len(summary["angle_B_WT_final"]) == 3
    assert all(0.0 <= a <= 180.0 for a in summary["angle_B_WT_final"])
    assert "provenance" in (out / "config.yaml").read_text()
    assert "duration: 20.0" in (out / "config.yaml").read_text()
    (out / "figures" / "angle_B_WT.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "figures" / "angle_B_WT.png").exists()


def test_run_mean_field_is_the_rate_run_of_the_spiking_files_mean_field(tmp_path, capsys):
    """``neurofa run CONFIG --mean-field`` runs the rate backend on ``mean_field_config``: the spiking dt and
    presentation time, τ_syn = τ_s, learning rates divided by k = 100; the same dataset as the API's."""
    import xarray as xr

    from neurofa.config import load_config
    from neurofa.runner import run
    from neurofa.spiking.params import mean_field_config

    model = MODELS / "spiking_digits_fa.yaml"
    overrides = ["simulation.duration=6", "simulation.record_interval=2"]
    out = tmp_path / "mf"
    args = ["run", str(model), "--mean-field", "--seeds", "1", "--quiet", "--no-plots", "--out", str(out)]
    assert main(args + [a for o in overrides for a in ("--set", o)]) == 0
    written = load_config(out / "config.yaml")
    assert written.simulation.dt == 0.1 and written.task.t_pres == 200.0 and written.simulation.tau_syn == 20.0
    assert written.plasticity.eta_fw == pytest.approx([0.4, 0.004])
    assert written.simulation.duration == 600.0  # 3 presentations of 200 ms
    expected = run(mean_field_config(load_config(model, overrides)), "rate", seeds=1, progress=False).dataset
    with xr.open_dataset(out / "results.nc") as got:
        assert got.sizes["time"] == 3
        for name in ("loss", "angle_B_WT"):
            assert got[name].values.tobytes() == expected[name].values.tobytes()
    assert main(["run", str(model), "--mean-field", "--backend", "spiking", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mean-field" in err[0] and "'spiking'" in err[0]
