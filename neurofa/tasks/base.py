"""The common shape of a task: arrays of inputs and targets, split into train / validation / test; the registry
of tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["TaskData", "TaskSpec", "TASKS", "register_task", "one_hot_targets"]


@dataclass
class TaskData:
    """Inputs ``x_*`` (n × n_in), regression targets ``y_*`` (n × n_out) and, for classification, integer
    ``labels_*`` (n,). Splits that a task does not have are ``None``."""

    name: str
    kind: Literal["classification", "regression", "unsupervised"]
    x_train: np.ndarray
    y_train: np.ndarray | None = None
    labels_train: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    labels_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    labels_test: np.ndarray | None = None

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_out(self) -> int | None:
        return None if self.y_train is None else int(self.y_train.shape[1])


def one_hot_targets(labels: np.ndarray, n_classes: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Targets with ``high`` at the label and ``low`` elsewhere (e.g. 0.1/1.0 for logistic read-outs)."""
    labels = np.asarray(labels, dtype=int)
    y = np.full((labels.size, n_classes), low, dtype=float)
    y[np.arange(labels.size), labels] = high
    return y


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: ``load(task, n_in, n_out, seed) -> TaskData`` for a validated ``task`` section.

    ``synthetic``: the inputs are drawn per seed (otherwise one fixed data set serves every seed); ``targets``:
    the task has targets (all but the input-only backprojection task); ``teacher``: the targets are the outputs of
    a teacher network of the model's own kind, which the model computes; ``classification``: one-hot targets in
    [target_low, target_high]; ``io``: the fixed (inputs, outputs) of its
    data, if any; ``check(cfg, where)``: the task's own configuration checks (raise ConfigError).
    """

    name: str
    load: Callable[[Any, int, int, int], TaskData]
    synthetic: bool = False
    targets: bool = True
    teacher: bool = False
    classification: bool = False
    io: tuple[int, int] | None = None
    check: Callable[[Any, str], None] | None = None
    #: how many samples (train, validation and test) ``load`` will return for a ``task`` section, for estimates
    samples: Callable[[Any], int] = lambda task: int(task.n_train) + int(task.n_test)
    #: how many test samples ``load`` will return for a ``task`` section: a spiking run presents each once after
    #: training, so the estimate of its time steps counts them
    test_samples: Callable[[Any], int] = lambda task: int(task.n_test)


#: every registered task by name (``neurofa/tasks/__init__.py`` imports each task module, one line per task)
TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` under its name."""
    TASKS[spec.name] = spec
    return spec
