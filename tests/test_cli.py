"""The ``neurofa`` command: exit codes, one-line user errors, and whole runs written to a run directory."""

import argparse
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


def test_seeds_take_a_count_a_range_or_a_list_and_refuse_the_rest(capsys):
    from neurofa.cli import seed_spec

    assert seed_spec("3") == 3 and seed_spec("2:5") == [2, 3, 4] and seed_spec("4,1") == [4, 1]
    for bad in ("x", "1:2:3", "1,a"):
        with pytest.raises(argparse.ArgumentTypeError, match="allowed: a count N"):
            seed_spec(bad)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(MODELS / "pal_backprojections.yaml"), "--seeds", "2-4", "--check"])
    assert exit_.value.code == 2
    assert "argument --seeds: '2-4' is invalid; allowed" in capsys.readouterr().err
    # values the syntax allows but a run does not: one-line errors from the one place that checks seeds
    for bad, message in (("0", "must be ≥ 1"), ("3:3", "seeds is empty"), ("1,1", "contains duplicates"),
                         ("-1:2", "must be ≥ 0"), ("3806651490364", "is more than simulation.max_steps")):
        assert main(["run", str(MODELS / "pal_backprojections.yaml"), f"--seeds={bad}", "--check"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def test_a_range_of_seeds_runs_those_seeds_with_the_results_of_the_full_batch(tmp_path, capsys):
    """Seeds spread over processes (``--seeds 1:3``) give, bitwise, what the same seeds give in one batch."""
    import xarray as xr

    pytest.importorskip("neurofa.rate.microcircuit")
    short = ["--set", "simulation.duration=20", "--set", "simulation.record_interval=5", "--quiet", "--no-plots"]
    for seeds, name in (("3", "all"), ("1:3", "part")):
        assert main(["run", str(MODELS / "pal_backprojections.yaml"), "--seeds", seeds, "--out",
                     str(tmp_path / name), *short]) == 0
    part = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert part["seeds"] == [1, 2]
    with xr.open_dataset(tmp_path / "all" / "results.nc") as full, \
            xr.open_dataset(tmp_path / "part" / "results.nc") as some:
        angles = full["angle_B_WT"].sel(seed=[1, 2])
        assert float(angles.isel(time=-1).min()) < float(angles.isel(time=0).min())  # B has moved
        assert angles.values.tobytes() == some["angle_B_WT"].values.tobytes()
        assert full["loss"].sel(seed=[1, 2]).values.tobytes() == some["loss"].values.tobytes()
