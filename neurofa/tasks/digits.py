"""scikit-learn's bundled 8×8 handwritten digits (1797 samples, 64 inputs, 10 classes; no download).

Pixel values 0…16 are scaled to [0, 1]. The split is fixed and stratified: 400 test samples (40 per class, chosen
with ``np.random.default_rng(DIGITS_SPLIT_SEED)``) and the remaining 1397 for training, independent of the run's
seeds, so every run sees the same test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurofa.config import ConfigError
from neurofa.tasks.base import TaskData, TaskSpec, one_hot_targets, register_task

__all__ = ["DIGITS_SPLIT_SEED", "N_TEST_PER_CLASS", "digits_arrays", "stratified_split", "digits_task"]

DIGITS_SPLIT_SEED = 20240
N_TEST_PER_CLASS = 40
N_CLASSES = 10


def stratified_split(labels: np.ndarray, n_test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``n_test_per_class`` random samples of every class go to the test set."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test.append(rng.choice(idx, size=n_test_per_class, replace=False))
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (1797, 64) values in [0, 1] and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # a dependency of the package; only a broken environment lacks it
        raise ConfigError("task.name = 'digits' needs scikit-learn, a dependency of neurofa: "
                          "pip install scikit-learn") from exc
    d = load_digits()
    return np.asarray(d.data, dtype=float) / 16.0, np.asarray(d.target, dtype=int)


def digits_task(task: Any) -> TaskData:
    """Fixed stratified split (1397 train / 400 test) with one-hot targets in [target_low, target_high]."""
    x, labels = digits_arrays()
    tr, te = stratified_split(labels, N_TEST_PER_CLASS, DIGITS_SPLIT_SEED)

    def targets(lab: np.ndarray) -> np.ndarray:
        return one_hot_targets(lab, N_CLASSES, task.target_low, task.target_high)

    return TaskData(
        "digits", "classification",
        x_train=x[tr], y_train=targets(labels[tr]), labels_train=labels[tr],
        x_test=x[te], y_test=targets(labels[te]), labels_test=labels[te],
    )


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return digits_task(task)


def _samples(task: Any) -> int:
    return 1797


register_task(TaskSpec("digits", _load, classification=True, io=(64, 10), samples=_samples,
                       test_samples=lambda task: N_TEST_PER_CLASS * N_CLASSES))
