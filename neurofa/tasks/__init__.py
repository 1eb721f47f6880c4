"""Input streams and targets.

:func:`load_task` turns a validated ``task`` section into :class:`TaskData` arrays:

- ``backprojection``: ``n_train`` inputs U[input_low, input_high] and no targets (PAL Fig 3);
- ``teacher``: ``n_train`` (+ ``n_test``) inputs U[input_low, input_high]; the targets come from a teacher network
  of the model's own kind, so the model that uses the task fills ``y_*`` (see :func:`neurofa.circuit.circuit_task`
  and :mod:`neurofa.tasks.teacher` for discrete-time networks);
- ``yinyang`` (Kriener2022, exact published splits), ``bars`` (3×3), ``digits`` (scikit-learn's bundled copy),
  ``mnist`` (local IDX/NPZ files): classification with one-hot targets in [target_low, target_high].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurofa.tasks.base import TaskData, one_hot_targets

__all__ = ["TaskData", "one_hot_targets", "load_task", "uniform_inputs"]


def uniform_inputs(n: int, n_in: int, low: float, high: float, seed: int, tag: int = 0) -> np.ndarray:
    """``n`` inputs drawn U[low, high] from the data stream ``(data_seed, tag)``."""
    return np.random.default_rng([int(seed), 100 + int(tag)]).uniform(low, high, size=(n, n_in))


def load_task(task: Any, n_in: int, n_out: int, seed: int = 0) -> TaskData:
    """Arrays for the ``task`` section (a :class:`neurofa.config.Task`) of a network with ``n_in`` inputs and
    ``n_out`` outputs. Synthetic inputs depend on ``task.data_seed`` and ``seed`` together; fixed data sets
    (Yin-Yang's published splits, Bars, digits, MNIST) do not depend on ``seed``."""
    name = task.name
    data_seed = int(task.data_seed) * 100_003 + int(seed)
    if name in ("backprojection", "teacher"):
        kind = "unsupervised" if name == "backprojection" else "regression"
        x_train = uniform_inputs(task.n_train, n_in, task.input_low, task.input_high, data_seed, tag=0)
        x_test = (uniform_inputs(task.n_test, n_in, task.input_low, task.input_high, data_seed, tag=1)
                  if task.n_test else None)
        return TaskData(name, kind, x_train, x_test=x_test)
    if name == "yinyang":
        from neurofa.tasks.yinyang import yinyang_task as make
    elif name == "bars":
        from neurofa.tasks.bars import bars_task as make
    elif name == "digits":
        from neurofa.tasks.digits import digits_task as make
    elif name == "mnist":
        from neurofa.tasks.mnist import mnist_task as make
    else:  # validated before; a new task must be added here
        raise ValueError(f"task.name = {name!r} is unknown")
    return make(task)
