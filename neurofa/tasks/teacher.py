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
from neurofa.config import ConfigError
from neurofa.tasks.base import TaskData, TaskSpec, register_task
from neurofa.tasks.synthetic import check_inputs, synthetic_inputs

__all__ = ["teacher_outputs", "teacher_task", "linear_teacher_task", "teacher_sizes", "check_teacher"]


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
    data = synthetic_inputs(task, n_in, seed)
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


def teacher_sizes(cfg: Any) -> list[int]:
    """Layer sizes of the teacher network: ``task.teacher_layers``, or the student's."""
    return list(cfg.task.teacher_layers or cfg.network.layers)


def check_teacher(cfg: Any, where: str) -> None:
    """The teacher's inputs and outputs match the student's; explicit ``teacher_weights`` fill its matrices."""
    check_inputs(cfg, where)
    task, layers = cfg.task, cfg.network.layers
    sizes = teacher_sizes(cfg)
    if task.teacher_layers and (sizes[0] != layers[0] or sizes[-1] != layers[-1]):
        raise ConfigError(
            f"{where}task.teacher_layers = {sizes!r} is invalid: input and output sizes must match network.layers "
            f"{layers!r}"
        )
    need = sum(a * b for a, b in zip(sizes[1:], sizes[:-1]))
    if task.teacher_weights and len(task.teacher_weights) != need:
        raise ConfigError(
            f"{where}task.teacher_weights has {len(task.teacher_weights)} values; the teacher {sizes} needs {need}"
        )


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return synthetic_inputs(task, n_in, seed)


register_task(TaskSpec("teacher", _load, synthetic=True, teacher=True, check=check_teacher))
