"""Sweeps on Dask: grid parsing and validation, one file per point, merging, resuming, surviving a lost worker.

Most tests use a stand-in backend (a closure with the backend contract ``simulate(cfg, seeds, progress)``; Dask
ships it to the workers by value) whose results are a known function of the grid value and the seed, so the merged
dataset can be checked point by point, and which leaves a file per computed seed so recomputation is counted.
One test runs the real discrete-time backend end-to-end through the command line.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import TINY_MLP_YAML

from neurofa.cli import main
from neurofa.config import ConfigError, load_config
from neurofa.results import Result
from neurofa.sweep import ClusterError, _structure_key, parse_grid, plan_structure_tasks, plan_tasks, sweep

TESTS = Path(__file__).resolve().parent
BASE = {"name": "standin", "plasticity": {"eta_bw": [10.0]}}


def expected_accuracy(eta_bw: float, seed: int) -> float:
    return 0.5 + 0.004 * eta_bw + 0.001 * seed


def make_standin(log_dir, delay_per_seed=0.0, fail_eta=None):
    """A backend whose final angle decays with eta_bw and whose accuracy is :func:`expected_accuracy`."""

    def simulate(cfg, seeds, progress=False):
        eta = cfg.plasticity.eta_bw[0]
        for s in seeds:
            Path(log_dir, f"{eta:g}-{s}-{uuid.uuid4().hex}").touch()
        if fail_eta is not None and eta == fail_eta:
            raise FloatingPointError(f"diverged at eta_bw={eta:g}")
        time.sleep(delay_per_seed * len(seeds))
        t = np.arange(5) * 10.0
        seeds_arr = np.asarray(seeds, dtype=float)
        angle = 90.0 * np.exp(-eta * t[None, :, None] / 1000.0) + 0.1 * seeds_arr[:, None, None] + np.zeros((1, 1, 2))
        return xr.Dataset(
            {
                "angle_B_WT": (("seed", "time", "layer"), angle),
                "loss": (("seed", "time"), np.exp(-t[None, :] / 20.0) * (1 + 0.01 * seeds_arr[:, None])),
                "test_accuracy": (("seed",), [expected_accuracy(eta, s) for s in seeds]),
            },
            coords={"seed": list(seeds), "time": t, "layer": [1, 2]},
        )

    return simulate


def computed(log_dir):
    """Names 'eta-seed' of every seed the stand-in computed (one entry per computation)."""
    return sorted("-".join(p.name.split("-")[:2]) for p in Path(log_dir).iterdir())


# ----------------------------------------------------------------------------------------------------------------
# grid parsing and bad input


def test_parse_grid_yaml_values_and_bracketed_lists():
    grid = parse_grid(
        ["plasticity.eta_bw=10,20.5,50", "plasticity.feedback=fa,pal", "network.layers=[5,20,5],[5,40,5]"]
    )
    assert grid == {
        "plasticity.eta_bw": [10, 20.5, 50],
        "plasticity.feedback": ["fa", "pal"],
        "network.layers": [[5, 20, 5], [5, 40, 5]],
    }


@pytest.mark.parametrize(
    "items, words",
    [
        (["plasticity.eta_bww=1,2"], ["plasticity.eta_bww", "eta_bw"]),
        (["plastcity.eta_bw=1,2"], ["plastcity", "plasticity"]),
        (["plasticity.eta_bw="], ["empty", "plasticity.eta_bw"]),
        (["plasticity.eta_bw=,"], ["empty"]),
        (["plasticity.eta_bw=1", "plasticity.eta_bw=2"], ["twice"]),
        (["plasticity.eta_bw"], ["KEY=VALUE"]),
    ],
)
def test_parse_grid_rejects_bad_items_naming_the_problem(items, words):
    with pytest.raises(ConfigError) as exc:
        parse_grid(items)
    for word in words:
        assert word in str(exc.value)


def test_bad_grid_value_fails_before_anything_runs(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"plasticity.feedback.*'pall'.*allowed"):
        sweep(BASE, {"plasticity.feedback": ["fa", "pall"]}, seeds=2, out=tmp_path / "s")
    with pytest.raises(ConfigError, match=r"simulation.dt = -1"):
        sweep(BASE, {"simulation.dt": [0.01, -1]}, seeds=2, out=tmp_path / "s")
    assert time.perf_counter() - start < 5
    assert not any((tmp_path / "s").glob("points/*"))


def test_cli_unknown_key_and_unreachable_scheduler_are_one_line_errors(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\n")
    assert main(["sweep", str(cfg), "--grid", "plasticity.eta_bx=1,2", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "plasticity.eta_bx" in err and "eta_bw" in err and len(err.strip().splitlines()) == 1

    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    start = time.perf_counter()
    code = main(["sweep", str(cfg), "--grid", "plasticity.eta_bw=1,2", "--cluster", address, "--out",
                 str(tmp_path / "b"), "--quiet"])
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert code == 2 and address in err and "scheduler" in err


def test_cluster_names_and_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="--cluster = 'lokal'.*local, slurm"):
        sweep(BASE, {"plasticity.eta_bw": [1]}, seeds=1, cluster="lokal", out=tmp_path, backend=make_standin(tmp_path))
    with pytest.raises(ConfigError, match="'partition' is not known"):
        sweep(BASE, {"plasticity.eta_bw": [1]}, seeds=1, cluster="slurm", cluster_options={"partition": "x"},
              out=tmp_path, backend=make_standin(tmp_path))
    assert issubclass(ClusterError, ConfigError)


def test_threads_per_point_never_oversubscribe_the_cores(tmp_path, monkeypatch):
    import importlib

    sweep_module = importlib.import_module("neurofa.sweep")

    monkeypatch.setattr(sweep_module, "available_cores", lambda: 8)
    assert sweep_module.local_workers(None, 1) == 2  # the default without threads
    assert sweep_module.local_workers(None, 4) == 2 and sweep_module.local_workers(None, 3) == 2
    assert sweep_module.local_workers(4, 2) == 4
    with pytest.raises(ConfigError, match=r"--workers = 3 with spiking.threads = 4 needs 12 cores, but 8 are"):
        sweep_module.local_workers(3, 4)
    with pytest.raises(ConfigError, match="threads = 2 is not allowed with backend = 'rate'"):
        sweep(BASE, {"plasticity.eta_bw": [1]}, seeds=1, out=tmp_path / "r", backend="rate", threads=2)
    pytest.importorskip("dask_jobqueue")
    with pytest.raises(ConfigError, match="cores = 1 is too few for 1 worker.*spiking.threads = 2"):
        with sweep_module.open_cluster("slurm", 1, {"cores": 1}, tmp_path, threads=2):
            pass


def test_plan_batches_seeds_of_a_configuration_but_keeps_workers_busy():
    todo = [[0, 1, 2, 3]] * 4
    tasks = plan_tasks(todo, n_workers=2, batched=True)
    assert len(tasks) >= 4 and sorted(s for _, c in tasks for s in c) == sorted(s for t in todo for s in t)
    assert all(len(c) == 4 for _, c in tasks)  # 16 points, 2 workers: whole configurations per task
    tasks = plan_tasks([[0, 1, 2, 3, 4, 5, 6, 7]], n_workers=2, batched=True)
    assert len(tasks) == 4 and {len(c) for _, c in tasks} == {2}  # one configuration split for parallelism
    assert len(plan_tasks(todo, n_workers=2, batched=False)) == 16  # unbatched: one seed per task


def tiny_spiking(**overrides):
    data = {"name": "tiny_spiking", "network": {"layers": [2, 3, 2]},
            "task": {"name": "backprojection", "n_train": 4, "t_pres": 1.0},
            "simulation": {"duration": 4.0, "record_interval": 2.0},
            "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [50.0]},
            "spiking": {"report": False, "nu_max": 200.0, "tau_s": 3.0}}
    return load_config(data, overrides)


def test_spiking_points_are_grouped_by_the_build_they_need():
    """Points that differ only in run arguments (rates, noise, seeds, fa vs pal) share a structure key; a change of
    the generated code (what is recorded, layer sizes) does not."""
    base = _structure_key(tiny_spiking())
    for same in ({"plasticity.eta_bw": [20.0]}, {"plasticity.feedback": "fa"}, {"spiking.sigma": 3.0},
                 {"conductances.g_api": 0.1}, {"network.init_feedback": 0.5}):
        assert _structure_key(tiny_spiking(**same)) == base, same
    for other in ({"simulation.record_detail": True}, {"network.layers": [2, 4, 2]},
                  {"simulation.record_interval": 1.0}):
        assert _structure_key(tiny_spiking(**other)) != base, other


def test_each_structure_runs_in_as_few_tasks_as_keep_the_workers_busy():
    todo = [[0, 1], [0, 1], [0], [0, 1, 2]]
    groups = ["a", "a", "b", "b"]
    one = plan_structure_tasks(todo, groups, n_workers=1)
    assert len(one) == 2  # one task per structure: two builds on one worker
    assert sorted((i, s) for task in one for i, seeds in task for s in seeds) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0), (3, 1), (3, 2)]
    assert all(len({groups[i] for i, _ in task}) == 1 for task in one)
    four = plan_structure_tasks(todo, groups, n_workers=4)
    assert len(four) == 4 and all(len({groups[i] for i, _ in task}) == 1 for task in four)


def test_a_spiking_sweep_builds_each_structure_once(tmp_path):
    """Two structures × two learning rates on one worker: two standalone builds, not one per point."""
    grid = {"plasticity.eta_bw": [20.0, 50.0], "simulation.record_interval": [2.0, 4.0]}
    cfg = tiny_spiking(**{"spiking.build_dir": str(tmp_path / "builds")})
    result = sweep(cfg, grid, seeds=[0], workers=1, out=tmp_path / "sweep", backend="spiking", progress=False,
                   plots=False)
    assert not result.failed and result.computed == 4
    points = [json.loads(p.read_text()) for p in (tmp_path / "sweep" / "points").glob("*.json")]
    assert sum(p["batch_backend_summary"]["spiking_builds"] for p in points) == 2


# ----------------------------------------------------------------------------------------------------------------
# whole sweeps on a LocalCluster


@pytest.fixture(scope="module")
def scheduler():
    """One LocalCluster of 2 worker processes shared by the tests below (a sweep connects to its address)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def test_sweep_merges_points_by_grid_value_and_reports_failures(tmp_path, scheduler):
    log = tmp_path / "log"
    log.mkdir()
    out = tmp_path / "sweep"
    grid = {"plasticity.eta_bw": [10, 50, 99], "plasticity.sigma": [0.05, 0.1]}
    result = sweep(BASE, grid, seeds=3, cluster=scheduler, out=out, backend=make_standin(log, fail_eta=99),
                   progress=False)

    # failed points: every seed of eta_bw=99, named with the error
    assert len(result.failed) == 2 * 3
    point, error = result.failed[0]
    assert point["plasticity.eta_bw"] == 99 and "FloatingPointError" in error and "diverged" in error
    assert "plasticity.eta_bw=99" in str(result.failed[0])

    ds = xr.load_dataset(out / "results.nc", engine="scipy")
    assert json.loads(ds.attrs["sweep_keys"]) == list(grid)
    assert dict(ds["test_accuracy"].sizes) == {"plasticity.eta_bw": 3, "plasticity.sigma": 2, "seed": 3}
    for eta in (10, 50):
        for sigma in (0.05, 0.1):
            got = ds["test_accuracy"].sel({"plasticity.eta_bw": eta, "plasticity.sigma": sigma}).values
            assert np.allclose(got, [expected_accuracy(eta, s) for s in range(3)])
    assert np.isnan(ds["test_accuracy"].sel({"plasticity.eta_bw": 99})).all()
    # faster feedback learning, smaller final angle: the merge kept each point at its own grid value
    final = ds["angle_B_WT"].isel(time=-1).mean(("seed", "layer", "plasticity.sigma"))
    assert final.sel({"plasticity.eta_bw": 50}) < final.sel({"plasticity.eta_bw": 10})

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_points"] == 18 and summary["n_failed"] == 6 and summary["n_computed"] == 12
    assert summary["main_metric"] == "test_accuracy"
    row = next(r for r in summary["points"] if r["plasticity.eta_bw"] == 50 and r["plasticity.sigma"] == 0.1)
    accs = [expected_accuracy(50, s) for s in range(3)]
    assert row["n_seeds"] == 3
    assert row["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert row["test_accuracy_sd"] == pytest.approx(np.std(accs, ddof=1))
    assert len(list((out / "points").glob("*.json"))) == 12

    # the figures, also redrawn by `neurofa plot`
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == ["sweep_plasticity_eta_bw.png", "sweep_plasticity_sigma.png"]
    for p in (out / "figures").glob("*.png"):
        p.unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "figures" / "sweep_plasticity_eta_bw.png").stat().st_size > 5000

    # the same call again computes only the failed points (which fail again), nothing that finished
    before = len(computed(log))
    again = sweep(BASE, grid, seeds=3, cluster=scheduler, out=out, backend=make_standin(log, fail_eta=99),
                  progress=False)
    assert len(computed(log)) - before == 6 and again.computed == 0 and len(again.failed) == 6


def test_lost_worker_loses_only_its_running_point(tmp_path, scheduler):
    """Kill a worker process (SIGKILL) after the first point finished: every point still ends up on disk once."""
    from dask.distributed import Client

    log = tmp_path / "log"
    log.mkdir()
    out = tmp_path / "sweep"
    grid = {"plasticity.eta_bw": [10, 20, 30, 40]}
    with Client(scheduler) as client:
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("result", sweep(
            BASE, grid, seeds=4, cluster=scheduler, out=out,
            backend=make_standin(log, delay_per_seed=0.4), progress=False)))
        thread.start()
        deadline = time.monotonic() + 60
        while not list((out / "points").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.4)  # both workers are into their next task (1.6 s each): the kill lands mid-point
        busy = [w for w, tasks in client.processing().items() if tasks]
        assert busy, "no worker was running a point after the first one finished"
        victim = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(victim, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        pids = set(client.run(os.getpid).values())
    assert victim not in pids
    result = box["result"]
    assert result.failed == []
    names = sorted(p.name for p in (out / "points").glob("*.json"))
    assert len(names) == len(set(names)) == 16
    assert sorted(computed(log)) != [] and set(computed(log)) == {f"{e}-{s}" for e in (10, 20, 30, 40)
                                                                  for s in range(4)}
    assert len(computed(log)) > 16  # the killed point ran twice
    ds = result.dataset
    assert ds["seed"].values.tolist() == [0, 1, 2, 3]
    assert np.isfinite(ds["test_accuracy"]).all()


RESUME_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_sweep import BASE, make_standin
from neurofa.sweep import sweep

if __name__ == "__main__":
    sweep(BASE, {{"plasticity.eta_bw": [10, 20, 30]}}, seeds=4, workers=2, out={out!r},
          backend=make_standin({log!r}, delay_per_seed=0.4), progress=False)
"""


def assert_group_gone(pgid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {pgid} survived SIGKILL")


def test_killed_sweep_resumes_without_recomputing_finished_points(tmp_path, scheduler):
    log = tmp_path / "log"
    log.mkdir()
    out = tmp_path / "sweep"
    script = tmp_path / "run_sweep.py"
    script.write_text(textwrap.dedent(RESUME_SCRIPT.format(tests=str(TESTS), out=str(out), log=str(log))))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "points").glob("*.json"))) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client, the scheduler and every worker at once
        proc.wait()
    assert_group_gone(proc.pid)
    done = list((out / "points").glob("*.json"))
    finished = {p.name: p.stat().st_mtime_ns for js in done for p in (js, js.with_suffix(".nc"))}
    n_done = len(done)
    assert 3 <= n_done < 12
    assert not (out / "results.nc").exists()
    first_run = len(computed(log))

    result = sweep(BASE, {"plasticity.eta_bw": [10, 20, 30]}, seeds=4, cluster=scheduler, out=out,
                   backend=make_standin(log, delay_per_seed=0.0), progress=False)
    assert result.computed == 12 - n_done and result.failed == []
    assert len(computed(log)) - first_run == 12 - n_done
    for name, mtime in finished.items():  # finished points untouched
        assert (out / "points" / name).stat().st_mtime_ns == mtime
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_finished"] == 12 and all(r["n_seeds"] == 4 for r in summary["points"])
    back = Result.load(out)
    assert np.allclose(back["test_accuracy"].sel({"plasticity.eta_bw": 30}), [expected_accuracy(30, s)
                                                                              for s in range(4)])


# ----------------------------------------------------------------------------------------------------------------
# a real backend end-to-end


def test_cli_sweep_of_the_discrete_time_network(tmp_path, capsys):
    pytest.importorskip("neurofa.rate.layered")
    cfg = tmp_path / "mlp.yaml"
    cfg.write_text(TINY_MLP_YAML)
    out = tmp_path / "sweep"
    args = ["sweep", str(cfg), "--grid", "training.lr=0.01,0.2", "--seeds", "2", "--workers", "2",
            "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    ds = Result.load(out).dataset
    assert dict(ds["loss"].sizes)["training.lr"] == 2 and ds.sizes["seed"] == 2
    loss = ds["loss"].transpose("training.lr", "seed", "time").values
    assert np.allclose(loss[0, :, 0], loss[1, :, 0])  # same seeds, same initial network whatever the rate
    assert (loss[:, :, -1] < loss[:, :, 0]).all()  # both learn
    assert (loss[1, :, -1] < loss[0, :, -1]).all()  # a 20 times larger rate gets further in 8 epochs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["main_metric"] == "test_loss" and summary["n_finished"] == 4
    assert (out / "figures" / "sweep_training_lr.png").exists()
