"""Synthetic input streams: the input-only backprojection task (PAL Fig 3) and the inputs of teacher–student
regression, both drawn U[input_low, input_high] per seed (``docs/science.md`` §4)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from neurofa.config import ConfigError
from neurofa.tasks.base import TaskData, TaskSpec, register_task

__all__ = ["uniform_inputs", "synthetic_inputs"]


def uniform_inputs(n: int, n_in: int, low: float, high: float, seed: int, tag: int = 0) -> np.ndarray:
    """``n`` inputs drawn U[low, high] from the data stream ``(data_seed, tag)``."""
    return np.random.default_rng([int(seed), 100 + int(tag)]).uniform(low, high, size=(n, n_in))


def synthetic_inputs(task: Any, n_in: int, seed: int) -> TaskData:
    """``n_train`` (+ ``n_test``) inputs U[input_low, input_high]; they depend on ``task.data_seed`` and ``seed``
    together. The teacher task's targets are filled by the model that uses it."""
    data_seed = int(task.data_seed) * 100_003 + int(seed)
    kind: Literal["unsupervised", "regression"] = "unsupervised" if task.name == "backprojection" else "regression"
    x_train = uniform_inputs(task.n_train, n_in, task.input_low, task.input_high, data_seed, tag=0)
    x_test = (uniform_inputs(task.n_test, n_in, task.input_low, task.input_high, data_seed, tag=1)
              if task.n_test else None)
    return TaskData(task.name, kind, x_train, x_test=x_test)


def check_inputs(cfg: Any, where: str) -> None:
    """At least one training input, and an input interval low ≤ high."""
    task = cfg.task
    if task.n_train < 1:
        raise ConfigError(f"{where}task.n_train = {task.n_train!r} is invalid: task {task.name!r} needs ≥ 1 input")
    if task.input_low > task.input_high:
        raise ConfigError(
            f"{where}task.input_low = {task.input_low!r} is invalid: must not exceed task.input_high = "
            f"{task.input_high!r}"
        )


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return synthetic_inputs(task, n_in, seed)


register_task(TaskSpec("backprojection", _load, synthetic=True, targets=False, check=check_inputs))
