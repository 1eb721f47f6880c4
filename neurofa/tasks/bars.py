"""The 3×3 bars task: the smallest classification problem for a microcircuit.

Eight patterns on a 3×3 grid, background 0.1 and "on" pixels 1.0 (row-major flattening to 9 inputs):
the 3 horizontal bars → class 0, the 3 vertical bars → class 1, the 2 diagonals → class 2.
There is nothing to generalise to: the training set and the test set are the same 8 patterns (the training set
repeated max(1, ``task.n_train // 8``) times, so an epoch of ``n_train`` samples shows each pattern equally often).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurofa.tasks.base import TaskData, TaskSpec, one_hot_targets, register_task

__all__ = ["BACKGROUND", "ON", "bars_patterns", "bars_task"]

BACKGROUND = 0.1
ON = 1.0
N_CLASSES = 3


def bars_patterns(background: float = BACKGROUND, on: float = ON) -> tuple[np.ndarray, np.ndarray]:
    """The 8 patterns (8, 9) and their labels (8,): horizontal rows, vertical columns, main and anti-diagonal."""
    masks: list[np.ndarray] = []
    labels: list[int] = []
    for r in range(3):
        m = np.zeros((3, 3), dtype=bool)
        m[r, :] = True
        masks.append(m)
        labels.append(0)
    for c in range(3):
        m = np.zeros((3, 3), dtype=bool)
        m[:, c] = True
        masks.append(m)
        labels.append(1)
    masks.append(np.eye(3, dtype=bool))
    masks.append(np.fliplr(np.eye(3, dtype=bool)))
    labels += [2, 2]
    x = np.where(np.stack(masks).reshape(8, 9), on, background)
    return x, np.asarray(labels, dtype=int)


def bars_task(task: Any) -> TaskData:
    """Train = test = the 8 bars patterns (train repeated max(1, ``n_train // 8``) times), one-hot targets."""
    x, labels = bars_patterns()
    repeats = max(1, int(task.n_train) // len(labels))
    x_train, l_train = np.tile(x, (repeats, 1)), np.tile(labels, repeats)

    def targets(lab: np.ndarray) -> np.ndarray:
        return one_hot_targets(lab, N_CLASSES, task.target_low, task.target_high)

    return TaskData(
        "bars", "classification",
        x_train=x_train, y_train=targets(l_train), labels_train=l_train,
        x_test=x.copy(), y_test=targets(labels), labels_test=labels.copy(),
    )


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return bars_task(task)


def _samples(task: Any) -> int:
    return 8 * max(1, int(task.n_train) // 8) + 8


register_task(TaskSpec("bars", _load, classification=True, io=(9, 3), samples=_samples,
                       test_samples=lambda task: 8))
