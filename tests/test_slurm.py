"""A sweep through a real SLURM cluster: ``neurofa sweep --cluster slurm`` (dask-jobqueue's SLURMCluster).

Needs a running SLURM controller with an idle node (``sudo bash .ci/slurm.sh`` starts a single-node one on this
machine). Without one the test is skipped with the reason, except on CI (``CI=true``), where it fails.
"""

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from conftest import TINY_MLP_YAML

from neurofa.cli import main
from neurofa.results import Result


def slurm_unavailable() -> str | None:
    """Why no SLURM sweep can run here (None when a node is idle and dask-jobqueue is installed)."""
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return "dask-jobqueue is not installed (pip install -e '.[cluster]')"
    for exe in ("sbatch", "sinfo", "squeue", "scancel", "scontrol"):
        if not shutil.which(exe):
            return f"{exe} not found (run: sudo bash .ci/slurm.sh)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)  # fast when it is down
    if ping.returncode != 0:
        return f"the SLURM controller is not running ({ping.stdout.splitlines()[0] if ping.stdout else ''}; " \
               "run: sudo bash .ci/slurm.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mix") for s in states):
        said = (out.stdout + out.stderr).strip() or "nothing"
        return f"no idle SLURM node (sinfo: {said}; run: sudo bash .ci/slurm.sh)"
    return None


@pytest.fixture
def slurm():
    reason = slurm_unavailable()
    for _ in range(10):  # a controller that has just started may answer sinfo with a transient error
        if not reason or os.environ.get("CI") != "true":
            break
        time.sleep(3.0)
        reason = slurm_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM must run on CI: {reason}")
        pytest.skip(reason)


def test_sweep_runs_its_points_as_slurm_jobs(slurm, tmp_path, capsys):
    cfg = tmp_path / "mlp.yaml"
    cfg.write_text(TINY_MLP_YAML)
    options = tmp_path / "slurm.yaml"
    options.write_text("walltime: '00:10:00'\nmemory: 1GB\nstart_timeout: 120\n")
    out = tmp_path / "sweep"
    args = ["sweep", str(cfg), "--grid", "plasticity.feedback=bp,fa", "--seeds", "2", "--cluster", "slurm",
            "--cluster-config", str(options), "--jobs", "2", "--cores", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err

    points = [json.loads(p.read_text()) for p in (out / "points").glob("*.json")]
    assert len(points) == 4
    assert all(p["slurm_job_id"] for p in points)  # every point ran inside a SLURM job
    assert list((out / "slurm-logs").glob("*.err"))
    ds = Result.load(out).dataset
    loss = ds["loss"].transpose("plasticity.feedback", "seed", "time").values
    assert np.isfinite(loss).all() and (loss[:, :, -1] < loss[:, :, 0]).all()
    # the cluster was closed with the sweep: no job of it is left in the queue
    queue = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, timeout=15).stdout
    assert "dask-worker" not in queue
