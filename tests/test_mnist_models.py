"""The MNIST-sized model files (models/mnist_fa.yaml, models/spiking_mnist_fa.yaml) on IDX files the test writes:
the loader reads 784-pixel images, and a few hundred training steps of the rate microcircuit separate the classes
of MNIST-shaped data (class templates plus noise; MNIST itself cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import neurofa as nf
from neurofa.config import load_config
from neurofa.runner import estimate
from neurofa.tasks.mnist import mnist_task, read_idx, synthetic_mnist, write_idx_folder

ROOT = Path(__file__).resolve().parents[1]


def _folder(tmp_path: Path) -> Path:
    return write_idx_folder(tmp_path / "mnist", **synthetic_mnist(300, 100, seed=0))


def test_written_idx_files_read_back_bit_for_bit(tmp_path: Path) -> None:
    arrays = synthetic_mnist(5, 3, seed=1)
    folder = write_idx_folder(tmp_path, **arrays)
    for key, stem in (("x_train", "train-images-idx3-ubyte"), ("y_test", "t10k-labels-idx1-ubyte")):
        np.testing.assert_array_equal(read_idx(folder / stem), arrays[key])


def test_the_rate_mnist_file_learns_mnist_shaped_data(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cfg = load_config(ROOT / "models" / "mnist_fa.yaml", [f"task.path={folder}", "simulation.duration=1200",
                                                          "simulation.record_interval=600", "simulation.seeds=1",
                                                          "plasticity.eta_decay=600"])
    data = mnist_task(cfg.task)
    assert data.x_train.shape == (300, 784) and data.x_test.shape == (100, 784)
    frozen = nf.run(load_config(cfg, {"plasticity.eta_fw": [0.0, 0.0], "plasticity.eta_ip": [0.0]}),
                    backend="rate", progress=False).summary["test_accuracy"]
    learned = nf.run(cfg, backend="rate", progress=False).summary
    # 600 samples (two passes over 300) lift the test accuracy far above the untrained network's
    assert not learned["diverged"]
    assert learned["test_accuracy"] > 0.8 > frozen + 0.3, (learned["test_accuracy"], frozen)


def test_the_spiking_mnist_file_is_a_valid_spiking_configuration(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cfg = load_config(ROOT / "models" / "spiking_mnist_fa.yaml", [f"task.path={folder}"])
    assert cfg.network.layers == [784, 100, 10] and cfg.spiking.post_signal == "spikes"
    est = estimate(cfg, "spiking", 1)  # runs the spiking backend's checks and plans the run
    assert est.bytes > 0


def test_the_spiking_time_of_a_run_counts_the_test_set_after_training(tmp_path: Path) -> None:
    """A spiking run presents the whole test set (``task.n_test: 0``) after training, so its simulated time, and
    every speed or time per epoch derived from it (``scripts/bench_mnist.py``), counts both. Dividing a run's wall
    time by its training presentations alone overstated the MNIST epoch six-fold."""
    from neurofa import spiking

    folder = _folder(tmp_path)  # 300 training and 100 test images
    cfg = load_config(ROOT / "models" / "spiking_mnist_fa.yaml", [f"task.path={folder}", "simulation.duration=40.0",
                                                                        "simulation.record_interval=20.0"])
    t = spiking.simulated_time(cfg)
    assert t["t_pres"] == 200.0 and t["train"] == 20 * 200.0  # 40 ms of rate time at k = 100: 20 presentations
    assert t["test"] == 100 * 200.0
    assert t["total"] >= t["train"] + t["test"] and t["total"] - (t["train"] + t["test"]) <= cfg.spiking.dt + 1e-9
