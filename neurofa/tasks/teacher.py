r"""Teacher–student regression for discrete-time layered networks.

A teacher is a fixed bias-free network of the student's kind: h_0 = x, h_ℓ = φ(T_ℓ h_{ℓ−1}), output h_L (or the
pre-activation T_L h_{L−1} with a linear read-out). Two data sources:

- :func:`linear_teacher_task` — Lillicrap2016's linear task y = T x with x ~ N(0, I) and T ~ U[−1, 1];
- :func:`teacher_task` — the ``task`` section's inputs U[input_low, input_high] (:func:`neurofa.tasks.load_task`)
  mapped through given teacher weights (for configurations these come from :func:`neurofa.circuit.teacher_weights`:
  explicit ``task.teacher_weights`` or U(−1, 1) × ``task.teacher_scale`` with sizes ``task.teacher_layers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurofa.activations import activation as activation_pair
from neurofa.tasks.base import TaskData

__all__ = ["teacher_outputs", "teacher_task", "linear_teacher_task"]


def teacher_outputs(
    weights: Sequence[np.ndarray], x: np.ndarray, activation: str = "linear", output_linear: bool = True
) -> np.ndarray:
    """Targets y* of the teacher with ``weights`` [T_1 … T_L] (T_ℓ of shape (n_ℓ, n_{ℓ−1})) for inputs ``x``
    (…, n, n_0): h_ℓ = φ(T_ℓ h_{ℓ−1}), the last layer linear when ``output_linear``."""
    phi, _ = activation_pair(activation)
    h = np.asarray(x, dtype=float)
    for i, t in enumerate(weights):
        a = h @ np.swapaxes(np.asarray(t, dtype=float), -1, -2)
        h = a if (i == len(weights) - 1 and output_linear) else phi(a)
    return h


def teacher_task(
    task: Any,
    weights: Sequence[np.ndarray],
    n_in: int,
    activation: str = "linear",
    output_linear: bool = True,
    seed: int = 0,
) -> TaskData:
    """Regression data for ``task`` (a :class:`neurofa.config.Task` named 'teacher'): its inputs for ``seed`` and
    the teacher's outputs as targets."""
    from neurofa.tasks import load_task

    n_out = int(np.asarray(weights[-1]).shape[0])
    data = load_task(task, n_in=n_in, n_out=n_out, seed=seed)
    data.y_train = teacher_outputs(weights, data.x_train, activation, output_linear)
    if data.x_test is not None:
        data.y_test = teacher_outputs(weights, data.x_test, activation, output_linear)
    return data


def linear_teacher_task(
    n_in: int, n_out: int, n_train: int, n_test: int, rng: np.random.Generator
) -> tuple[TaskData, np.ndarray]:
    """Lillicrap2016's linear task: T ~ U[−1, 1]^(n_out × n_in), x ~ N(0, I), y* = T x.

    Returns the data and T. Draw order from ``rng``: T, training inputs, test inputs.
    """
    T = rng.uniform(-1.0, 1.0, size=(n_out, n_in))
    x_train = rng.normal(size=(n_train, n_in))
    x_test = rng.normal(size=(n_test, n_in)) if n_test else None
    data = TaskData(
        "teacher", "regression",
        x_train=x_train, y_train=x_train @ T.T,
        x_test=x_test, y_test=None if x_test is None else x_test @ T.T,
    )
    return data, T
