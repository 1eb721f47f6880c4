"""Checkpoints (``simulation.checkpoint_interval``) and ``neurofa run --resume``: a run killed with SIGKILL
continues from its last checkpoint, recomputes less than one interval, and ends bitwise where the run that was
not interrupted ends, in the rate backend and in the spiking backend (whose random generators are restored)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import neurofa as nf
from neurofa.checkpoint import Checkpoint
from neurofa.circuit import initial_weights
from neurofa.cli import main
from neurofa.config import ConfigError, dump_config, load_config, to_dict
from neurofa.model import compile_model
from neurofa.rate import microcircuit as rate_microcircuit
from neurofa.rate.dynamics import Microcircuit
from neurofa.rundir import MARKER
from neurofa.spiking import mean_field_config
from neurofa.spiking import program as spiking_program
from neurofa.sweep import point_hash, run_point_task

MODELS = Path(__file__).resolve().parents[1] / "models"
ENV = {**os.environ, "MPLBACKEND": "Agg"}


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def _short(name: str, presentations: int, every: float, mean_field: bool = False) -> nf.Config:
    cfg = load_config(MODELS / f"{name}.yaml")
    cfg = mean_field_config(cfg) if mean_field else cfg
    t = cfg.task.t_pres
    over = {"simulation.duration": presentations * t, "simulation.record_interval": presentations / 4 * t,
            "simulation.record_detail": True, "simulation.checkpoint_interval": every * t}
    if cfg.plasticity.eta_decay > 0:
        over["plasticity.eta_decay"] = presentations / 4 * t
    if cfg.simulation.test_interval > 0:
        over["simulation.test_interval"] = presentations / 4 * t
    return load_config(cfg, over)


# -- rate ------------------------------------------------------------------------------------------------------------


def test_the_rate_checkpoint_holds_every_array_that_changes() -> None:
    """Step a batch, snapshot every array of the kernel, step on: whatever changed must be in its checkpoint
    (or be a view of a packed buffer that is)."""
    cfg = _short("spiking_yinyang_fa", 4, 1.0, mean_field=True)  # τ_syn, filtered target, annealing
    model = compile_model(cfg)
    net = Microcircuit(model, cfg.simulation, initial_weights(cfg, [0, 1], model))
    data = rate_microcircuit.TaskStream(cfg, [0, 1], 2)
    net.present(*data.sample(0))
    net.set_learning_rate_factor(0.5)

    def arrays() -> dict[str, np.ndarray]:
        out = {}
        for name, value in vars(net).items():
            values = value if isinstance(value, list) else [value]
            out.update({f"{name}[{i}]": v.copy() for i, v in enumerate(values) if isinstance(v, np.ndarray)})
        return out

    for _ in range(3):
        net.step(None)
    before = arrays()
    for _ in range(3):
        net.step(None)
    changed = {k.split("[")[0] for k, v in arrays().items() if not np.array_equal(v, before[k], equal_nan=True)}
    assert {"_F_all", "u", "r"} <= changed
    views = {"W", "B", "W_IP", "B_PI", "F", "G", "_dF", "_dG", "inputs", "_x"}  # of packed or presented arrays
    missing = changed - set(net.state()) - {n.split("[")[0] for n in net.state()} - views - {"W_lo"}
    assert not missing, f"arrays that change but are not checkpointed: {sorted(missing)}"


@pytest.mark.parametrize("name, mean_field, precision, kernel", [("pal_backprojections", False, "double", "numpy"),
                                                                 ("pal_backprojections", False, "single", "numpy"),
                                                                 ("pal_backprojections", False, "double", "fused"),
                                                                 ("yinyang_kp", False, "double", "numpy"),
                                                                 ("spiking_bars_pal", True, "double", "numpy")])
def test_a_rate_run_resumed_from_its_last_checkpoint_is_bitwise_the_whole_run(
        name: str, mean_field: bool, precision: str, kernel: str, tmp_path: Path) -> None:
    """The checkpoint directory of a finished run still holds its last checkpoint (0.73 of the way through an
    interval before the end): a second run resumes there, steps only the rest, and ends bitwise the same (in
    float32 too, ``simulation.rate_precision: single``, and with the compiled kernel, which draws PAL's noise
    itself: the checkpoint holds its generators)."""
    if kernel == "fused":
        pytest.importorskip("numba")
    cfg = load_config(_short(name, 40, 7.3, mean_field), {"simulation.rate_precision": precision,
                                                          "simulation.rate_kernel": kernel})
    whole = nf.run(cfg, seeds=[0, 1], progress=False)
    checkpointed = nf.run(cfg, seeds=[0, 1], progress=False, checkpoint=tmp_path)
    _same(whole.dataset, checkpointed.dataset)
    steps = []
    original = Microcircuit.advance

    def counted(self: Microcircuit, noise: Any, n_steps: int) -> int:
        steps.append(original(self, noise, n_steps))
        return steps[-1]

    Microcircuit.advance = counted  # type: ignore[method-assign]
    try:
        resumed = nf.run(cfg, seeds=[0, 1], progress=False, checkpoint=tmp_path)
    finally:
        Microcircuit.advance = original  # type: ignore[method-assign]
    _same(whole.dataset, resumed.dataset)
    n_steps = round(cfg.simulation.duration / cfg.simulation.dt)
    per = round(cfg.simulation.checkpoint_interval / cfg.simulation.dt)
    assert sum(steps) == n_steps - (n_steps - 1) // per * per


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path: Path) -> None:
    cfg = _short("pal_backprojections", 20, 7.0)
    nf.run(cfg, seeds=[0], progress=False, checkpoint=tmp_path)
    with pytest.raises(ConfigError, match="written by another configuration") as info:
        nf.run(load_config(cfg, {"plasticity.eta_bw": [1.0]}), seeds=[0], progress=False, checkpoint=tmp_path)
    assert "remove" in str(info.value)
    (tmp_path / f"{rate_microcircuit.CHECKPOINT}.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        nf.run(cfg, seeds=[0], progress=False, checkpoint=tmp_path)


def _killed_at(command: list[str], progress: Any, fraction: float, timeout: float = 240.0) -> float:
    """Start ``command``, SIGKILL it once ``progress()`` (the fraction done by its checkpoints) reaches
    ``fraction``, and return the fraction its last checkpoint had reached."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            done = progress()
            if done >= fraction:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return float(progress())
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before it was killed: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.02)
        raise AssertionError("the run did not reach its checkpoints in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _position(path: Path, key: str, index: int = 0) -> int:
    try:
        with np.load(path) as data:
            return int(np.atleast_1d(data[key])[index])
    except (OSError, ValueError, KeyError, EOFError):  # not written yet, or being replaced
        return -1


def test_rate_run_killed_at_60_percent_resumes_bitwise(tmp_path: Path) -> None:
    cfg = load_config(MODELS / "pal_backprojections.yaml", {"simulation.duration": 3000.0,
                                                            "simulation.record_interval": 300.0,
                                                            "simulation.checkpoint_interval": 300.0})
    config = tmp_path / "cfg.yaml"
    config.write_text(dump_config(cfg))
    out = tmp_path / "run"
    n_steps = round(cfg.simulation.duration / cfg.simulation.dt)
    ckpt = out / "checkpoint" / f"{rate_microcircuit.CHECKPOINT}.npz"
    done = _killed_at([sys.executable, "-m", "neurofa.cli", "run", str(config), "--out", str(out), "--seeds", "2",
                       "--quiet"], lambda: _position(ckpt, "position") / n_steps, 0.6)
    assert 0.6 <= done < 1.0
    assert (out / MARKER).exists() and not (out / "summary.json").exists()
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2  # refused: holds a run (--resume it)
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert not (out / MARKER).exists() and not (out / "checkpoint").exists()
    whole = nf.run(cfg, seeds=2, progress=False)
    _same(whole.dataset, nf.Result.load(out).dataset)
    assert main(["run", "--resume", str(out)]) == 0  # complete: nothing to do


def test_resume_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["run", str(MODELS / "pal_backprojections.yaml"), "--resume", str(tmp_path)]) == 2
    assert "cannot be given with it" in capsys.readouterr().err
    assert main(["run", "--backend", "spiking", "--resume", str(tmp_path)]) == 2
    assert "--backend cannot be given with it" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "CONFIG" in capsys.readouterr().err
    for over, message in ((["--set", "simulation.checkpoint_interval=100", "--set", "spiking.device=runtime",
                            "--backend", "spiking"], "spiking.device = 'cpp_standalone'"),
                          (["--set", "simulation.checkpoint_interval=100"], "not allowed for model 'mlp'")):
        model = "yinyang_mlp_fa.yaml" if "mlp" in message else "spiking_bars_pal.yaml"
        assert main(["run", str(MODELS / model), "--check", *over]) == 2
        assert message in capsys.readouterr().err


# -- spiking ---------------------------------------------------------------------------------------------------------


def _spiking(duration: float = 400.0, **over: Any) -> nf.Config:
    return load_config({
        "name": "chunks", "network": {"layers": [4, 8, 4]},
        "task": {"name": "backprojection", "n_train": 20, "t_pres": 1.0},
        "simulation": {"duration": duration, "record_interval": 50.0, "record_detail": True},
        "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [500.0]},
        "spiking": {"device": "cpp_standalone", "report": False, "sigma": 6.0, "record_spikes": "all"},
    }, over)


def test_a_spiking_run_in_chunks_is_bitwise_the_run_in_one_piece(tmp_path: Path) -> None:
    """Chunks start from the previous chunk's state variables and random generators: the same weights, rates,
    spikes; a second run with the checkpoints of the first runs nothing and gives the same again."""
    whole = nf.run(_spiking(), backend="spiking", seeds=[0], progress=False)
    chunked_cfg = _spiking(**{"simulation.checkpoint_interval": 40.0})  # → rounded up to 8 chunks of 2.5 s
    chunked = nf.run(chunked_cfg, backend="spiking", seeds=[0], progress=False, checkpoint=tmp_path)
    assert len(list(tmp_path.glob("seed0_chunk*.npz"))) == 8
    _same(whole.dataset, chunked.dataset)
    assert whole.spikes is not None and chunked.spikes is not None
    _same(whole.spikes, chunked.spikes)
    np.testing.assert_array_equal(whole.dataset["time"].values, chunked.dataset["time"].values)
    again = nf.run(chunked_cfg, backend="spiking", seeds=[0], progress=False, checkpoint=tmp_path)
    assert again.summary["spiking_builds"] == 0
    _same(whole.dataset, again.dataset)


def test_a_spiking_teacher_run_with_annealing_in_chunks_equals_the_run_in_one_piece() -> None:
    """With targets (the half-presentation read-out, test presentations after training) and the annealing factor
    1/(1 + t/T_η), bitwise; the padded last chunk's silent presentations are dropped."""
    base = {"simulation.duration": 4000.0, "simulation.record_interval": 1000.0, "plasticity.eta_decay": 2000.0,
            "spiking.report": False}
    cfg = load_config(MODELS / "spiking_teacher_1-1-1_pal.yaml", base)
    whole = nf.run(cfg, backend="spiking", seeds=[0], progress=False)
    chunked = nf.run(load_config(cfg, {"simulation.checkpoint_interval": 1500.0}), backend="spiking", seeds=[0],
                     progress=False)
    _same(whole.dataset, chunked.dataset)  # the annealing factor too: it reads the run's time step


def test_spiking_run_killed_at_60_percent_resumes_bitwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _spiking(**{"simulation.checkpoint_interval": 50.0})  # 20 s in 8 chunks of 2.5 s (the builds above)
    config = tmp_path / "cfg.yaml"
    config.write_text(dump_config(cfg))
    out = tmp_path / "run"
    state = out / "checkpoint" / "seed0_state.npz"
    n_chunks = 8
    done = _killed_at([sys.executable, "-m", "neurofa.cli", "run", str(config), "--backend", "spiking", "--out",
                       str(out), "--seeds", "1", "--quiet"], lambda: _position(state, "next_chunk") / n_chunks, 0.6)
    assert 0.6 <= done < 1.0
    runs = []
    original = spiking_program.run_program
    monkeypatch.setattr(spiking_program, "run_program", lambda *a, **k: (runs.append(1), original(*a, **k))[1])
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert len(runs) == n_chunks - round(done * n_chunks)  # only the chunks not finished: < 1 interval lost
    monkeypatch.undo()
    whole = nf.run(load_config(cfg, {"simulation.checkpoint_interval": 0.0}), backend="spiking", seeds=[0],
                   progress=False)
    resumed = nf.Result.load(out)
    _same(whole.dataset, resumed.dataset)
    assert resumed.spikes is not None and whole.spikes is not None
    _same(whole.spikes, resumed.spikes)


class _Killed(BaseException):
    """What a worker's death looks like to the code it was running: it never returns."""


def test_a_killed_sweep_point_resumes_from_its_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point whose worker died keeps its checkpoint in the points directory; the task run again continues it
    and removes the checkpoint once the point's files are written."""
    cfg = _short("pal_backprojections", 40, 7.3)
    per = round(cfg.simulation.checkpoint_interval / cfg.simulation.dt)
    points = tmp_path / "points"
    points.mkdir()
    phash = point_hash(cfg, "rate")
    save = Checkpoint.save

    def dying(self: Checkpoint, name: str, arrays: Any) -> Path:
        path = save(self, name, arrays)
        if int(arrays["position"][0]) >= 3 * per:
            raise _Killed
        return path

    monkeypatch.setattr(Checkpoint, "save", dying)
    with pytest.raises(_Killed):
        run_point_task(to_dict(cfg), "rate", [0, 1], {}, str(points), phash)
    assert len(list(points.glob("*.checkpoint"))) == 1 and not list(points.glob("*.nc"))
    monkeypatch.undo()
    positions = []
    resume = rate_microcircuit._Run.resume
    monkeypatch.setattr(rate_microcircuit._Run, "resume",
                        lambda self, c: (positions.append(resume(self, c)), positions[-1])[1])
    records = run_point_task(to_dict(cfg), "rate", [0, 1], {}, str(points), phash)
    assert all(r["ok"] for r in records) and positions[0][0] == 3 * per
    assert not list(points.glob("*.checkpoint"))
    whole = nf.run(cfg, seeds=[0, 1], progress=False).dataset
    for seed in (0, 1):
        point = xr.load_dataset(points / f"{phash}-seed{seed}.nc", engine="scipy")
        np.testing.assert_array_equal(point["angle_B_WT"].values, whole["angle_B_WT"].sel(seed=[seed]).values)
