"""The Yin-Yang classification task (Kriener2022), generated exactly as published.

Geometry: a disc of radius r_big = 0.5 centred at (0.5, 0.5) holds two small dots of radius r_small = 0.1 at
(0.75, 0.5) and (0.25, 0.5). With d_r, d_l the distances of (x, y) to the right and left dot centres,

- class 2 (dot) if d_r < r_small or d_l < r_small;
- otherwise class ``int(is_yin)`` with is_yin = (d_r ≤ r_small) or (r_small < d_l ≤ r_big/2)
  or (y > r_big and d_r > r_big/2).

Sampling procedure (one legacy numpy ``RandomState(seed)`` per split): for each sample draw the goal class
g = ``rng.randint(3)``, then draw ``(x, y) = rng.rand(2) · 2 r_big`` until the point lies inside the big circle
(distance to the centre ≤ r_big) and has class g. Features are (x, y, 1 − x, 1 − y); the mirrored coordinates let a
bias-free network build a constant input. With the published splits (train 5000 samples / seed 42, validation
1000 / seed 41, test 1000 / seed 40) this reproduces the reference data set sample for sample, because the draws
from the random stream happen in the same order. No two splits share a seed.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from neurofa.tasks.base import TaskData, TaskSpec, one_hot_targets, register_task

__all__ = [
    "R_BIG",
    "R_SMALL",
    "SPLITS",
    "yinyang_class",
    "yinyang_samples",
    "yinyang_task",
]

R_BIG = 0.5
R_SMALL = 0.1
N_CLASSES = 3
CLASS_NAMES = ("yin", "yang", "dot")
# split name -> (number of samples, RandomState seed), as published by Kriener2022
SPLITS: dict[str, tuple[int, int]] = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}


def _distance(x: float, y: float, cx: float, cy: float) -> float:
    """√((x − cx)² + (y − cy)²) with the same floating-point operations as the published generator."""
    dx, dy = x - cx, y - cy
    return math.sqrt(dx * dx + dy * dy)


def yinyang_class(x: float, y: float, r_small: float = R_SMALL, r_big: float = R_BIG) -> int:
    """Class of the point (x, y): 0 yang, 1 yin, 2 dot (see the module docstring for the criteria)."""
    d_right = _distance(x, y, 1.5 * r_big, r_big)
    d_left = _distance(x, y, 0.5 * r_big, r_big)
    if d_right < r_small or d_left < r_small:
        return 2
    is_yin = (d_right <= r_small) or (r_small < d_left <= 0.5 * r_big) or (y > r_big and d_right > 0.5 * r_big)
    return int(is_yin)


def _inside_big_circle(x: float, y: float, r_big: float) -> bool:
    return _distance(x, y, r_big, r_big) <= r_big


@lru_cache(maxsize=8)
def _cached_samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    features, labels = yinyang_samples(n, seed)
    features.flags.writeable = False
    labels.flags.writeable = False
    return features, labels


def yinyang_samples(
    n: int, seed: int, r_small: float = R_SMALL, r_big: float = R_BIG
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of the Yin-Yang data set from ``np.random.RandomState(seed)``.

    Returns features (n, 4) = (x, y, 1 − x, 1 − y) and integer labels (n,). The draw order is the published one:
    per sample one ``randint(3)`` for the goal class, then pairs ``rand(2)`` until a point inside the big circle
    has that class (rejection sampling keeps the classes balanced in expectation).
    """
    rng = np.random.RandomState(int(seed))
    features = np.empty((n, 4))
    labels = np.empty(n, dtype=int)
    for i in range(n):
        goal = rng.randint(N_CLASSES)
        while True:
            x, y = (float(v) for v in rng.rand(2) * 2.0 * r_big)
            if not _inside_big_circle(x, y, r_big):
                continue
            if yinyang_class(x, y, r_small, r_big) == goal:
                break
        features[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = goal
    return features, labels


def yinyang_task(task: Any) -> TaskData:
    """The published train/validation/test splits with one-hot targets in [task.target_low, task.target_high].

    ``task.n_train`` / ``task.n_test`` are ignored: the published sizes and seeds are fixed (SPLITS).
    """
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, (n, seed) in SPLITS.items():
        features, labels = _cached_samples(n, seed)
        arrays[split] = (features.copy(), labels.copy())

    def targets(labels: np.ndarray) -> np.ndarray:
        return one_hot_targets(labels, N_CLASSES, task.target_low, task.target_high)

    (x_tr, l_tr), (x_va, l_va), (x_te, l_te) = arrays["train"], arrays["validation"], arrays["test"]
    return TaskData(
        "yinyang", "classification",
        x_train=x_tr, y_train=targets(l_tr), labels_train=l_tr,
        x_val=x_va, y_val=targets(l_va), labels_val=l_va,
        x_test=x_te, y_test=targets(l_te), labels_test=l_te,
    )


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return yinyang_task(task)


def _samples(task: Any) -> int:
    return sum(n for n, _ in SPLITS.values())


register_task(TaskSpec("yinyang", _load, classification=True, io=(4, 3), samples=_samples,
                       test_samples=lambda task: SPLITS["test"][0]))
