"""Input streams and targets: a registry of tasks.

:func:`load_task` turns a validated ``task`` section into :class:`TaskData` arrays. Each task module registers a
:class:`~neurofa.tasks.base.TaskSpec` (its loader, whether its inputs depend on the seed, its fixed input and
output sizes, its own checks); the imports below are the registry, one line per task module:

- ``backprojection``: ``n_train`` inputs U[input_low, input_high] and no targets (PAL Fig 3);
- ``teacher``: ``n_train`` (+ ``n_test``) inputs U[input_low, input_high]; the targets come from a teacher network
  of the model's own kind, so the model that uses the task fills ``y_*`` (see :func:`neurofa.circuit.circuit_task`
  and :mod:`neurofa.tasks.teacher` for discrete-time networks);
- ``yinyang`` (Kriener2022, exact published splits), ``bars`` (3×3), ``digits`` (scikit-learn's bundled copy),
  ``mnist`` (local IDX/NPZ files): classification with one-hot targets in [target_low, target_high].
"""

from __future__ import annotations

from typing import Any

from neurofa.config import ConfigError, choice_error, register_check
from neurofa.tasks import bars as bars  # 3×3 bars
from neurofa.tasks import digits as digits  # scikit-learn's 8×8 digits
from neurofa.tasks import mnist as mnist  # MNIST from local files
from neurofa.tasks import synthetic as synthetic  # backprojection: uniform inputs, no targets
from neurofa.tasks import teacher as teacher  # teacher: uniform inputs, a teacher network's targets
from neurofa.tasks import yinyang as yinyang  # Yin-Yang, published splits
from neurofa.tasks.base import TASKS, TaskData, TaskSpec, one_hot_targets
from neurofa.tasks.synthetic import uniform_inputs

__all__ = ["TaskData", "TaskSpec", "TASKS", "one_hot_targets", "load_task", "task_spec", "uniform_inputs"]


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name`` (validated at the edge)."""
    return TASKS[name]


def load_task(task: Any, n_in: int, n_out: int, seed: int = 0) -> TaskData:
    """Arrays for the ``task`` section (a :class:`neurofa.config.Task`) of a network with ``n_in`` inputs and
    ``n_out`` outputs. Synthetic inputs depend on ``task.data_seed`` and ``seed`` together; fixed data sets
    (Yin-Yang's published splits, Bars, digits, MNIST) do not depend on ``seed``."""
    return TASKS[task.name].load(task, n_in, n_out, seed)


@register_check("task")
def check_task(cfg: Any, where: str) -> None:
    """A registered task whose fixed sizes fit ``network.layers``, then the task's own checks."""
    name = cfg.task.name
    if name not in TASKS:
        raise choice_error(where, "task.name", name, TASKS)
    spec = TASKS[name]
    layers = cfg.network.layers
    if spec.io is not None and (layers[0] != spec.io[0] or layers[-1] != spec.io[1]):
        raise ConfigError(
            f"{where}network.layers = {layers!r} is invalid for task {name!r}: needs {spec.io[0]} inputs and "
            f"{spec.io[1]} outputs"
        )
    task = cfg.task
    if spec.classification and task.target_low >= task.target_high:
        raise ConfigError(
            f"{where}task.target_low = {task.target_low!r} is invalid: must be below task.target_high = "
            f"{task.target_high!r} (the one-hot targets' low and high values)"
        )
    if spec.check is not None:
        spec.check(cfg, where)
