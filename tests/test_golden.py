"""Golden outputs: short runs of shipped model files must reproduce what the code gave when the values were recorded.

``tests/data/golden.npz`` holds, per case, the arrays a short run produced; the rate, mean-field and discrete-time
cases were recorded with the code before the model-description refactoring (commit b09abf1) and match it bitwise,
the Kolen–Pollack case (new then) with the code after it. A change of the arithmetic shows here first; when a change
of results is intended, regenerate with ``python tests/test_golden.py`` and say so in the commit.

Rate arrays are compared to 1e-10 relative (BLAS kernels may differ between machines in the last bits); spike
counts exactly, spiking weights to 1e-9 relative.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurofa as nf
from neurofa.config import ConfigError, load_config
from neurofa.spiking import mean_field_config

MODELS = Path(__file__).resolve().parents[1] / "models"
GOLDEN = Path(__file__).resolve().parent / "data" / "golden.npz"


def _short(name: str, presentations: int, **extra: Any) -> nf.Config:
    cfg = load_config(MODELS / f"{name}.yaml")
    t = cfg.task.t_pres
    over = {"simulation.duration": presentations * t, "simulation.record_interval": presentations // 4 * t,
            "simulation.record_detail": True, "simulation.test_interval": 0.0, **extra}
    if cfg.plasticity.eta_decay > 0:
        over["plasticity.eta_decay"] = presentations // 4 * t
    return load_config(cfg, over)


def _spiking() -> nf.Config:
    return load_config({
        "name": "golden_spiking", "network": {"layers": [4, 8, 4]},
        "task": {"name": "backprojection", "n_train": 20, "t_pres": 1.0},
        "simulation": {"duration": 400.0, "record_interval": 100.0, "record_detail": True},
        "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [500.0]},
        "spiking": {"device": "cpp_standalone", "report": False, "sigma": 6.0},
    })


WEIGHTS = ("weights_W", "weights_B", "rate_pyr", "loss")
#: name → (backend, configuration, seeds, variables kept)
CASES: dict[str, tuple[str, Callable[[], nf.Config], list[int], tuple[str, ...]]] = {
    "pal_backprojections": ("rate", lambda: _short("pal_backprojections", 20), [0, 1], ("angle_B_WT", *WEIGHTS)),
    "yinyang_fa": ("rate", lambda: _short("yinyang_fa", 40), [0, 1], (*WEIGHTS, "test_accuracy", "test_loss")),
    "bp_teacher": ("rate", lambda: _short("bp_teacher_1-1-1", 40), [0, 1], (*WEIGHTS, "test_loss")),
    "yinyang_kp": ("rate", lambda: _short("yinyang_kp", 40), [0, 1], ("angle_B_WT", *WEIGHTS, "test_accuracy")),
    "yinyang_mlp_pal": ("rate", lambda: load_config(MODELS / "yinyang_mlp_pal.yaml", {"training.epochs": 1}),
                        [0, 1], ("loss", "angle_B_WT", "angle_update_bp", "test_accuracy")),
    "meanfield_spiking_yinyang_fa": ("rate", lambda: mean_field_config(_short("spiking_yinyang_fa", 4)), [0],
                                     (*WEIGHTS, "test_accuracy")),
    "spiking_pal": ("spiking", _spiking, [0], ("rate_pyr", "rate_int", "weights_B", "angle_B_WT")),
}


def _arrays(name: str) -> dict[str, np.ndarray]:
    backend, make, seeds, keep = CASES[name]
    ds = nf.run(make(), backend=backend, seeds=seeds, progress=False).dataset
    return {f"{name}/{var}": np.asarray(ds[var].values) for var in keep}


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize("name", list(CASES))
def test_short_runs_reproduce_the_recorded_outputs(name: str, golden: dict[str, np.ndarray]) -> None:
    backend = CASES[name][0]
    for key, value in _arrays(name).items():
        expected = golden[key]
        if key.endswith(("rate_pyr", "rate_int")) and backend == "spiking":  # spike counts / (ν_max · window)
            np.testing.assert_array_equal(value, expected, err_msg=key)
        else:
            rtol = 1e-9 if backend == "spiking" else 1e-10
            np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-300, err_msg=key)


def main(argv: list[str]) -> None:
    """Record ``tests/data/golden.npz``; ``--missing`` adds only the cases it lacks (or that this code refuses)."""
    existing: dict[str, np.ndarray] = {}
    if "--missing" in argv and GOLDEN.exists():
        with np.load(GOLDEN) as data:
            existing = dict(data)
    out = dict(existing)
    for name in CASES:
        if any(k.startswith(f"{name}/") for k in existing):
            continue
        try:
            out.update(_arrays(name))
            print(f"recorded {name}")
        except ConfigError as exc:
            print(f"skipped {name}: {exc}")
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
