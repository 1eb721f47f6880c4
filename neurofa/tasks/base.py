"""The common shape of a task: arrays of inputs and targets, split into train / validation / test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["TaskData", "one_hot_targets"]


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
