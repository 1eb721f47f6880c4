"""Checkpoints: the state a long run needs to continue after it was killed, in files that are complete or absent.

A run given a checkpoint directory (``neurofa run`` uses ``RUN_DIR/checkpoint``) and a positive
``simulation.checkpoint_interval`` writes there every interval of simulated time; ``neurofa run --resume RUN_DIR``
continues from the last one. What a backend stores is its own (:mod:`neurofa.rate.microcircuit`: the batch's
whole state, bitwise; :mod:`neurofa.spiking`: one directory per seed with the state after each chunk of the
standalone run and the monitor data of every chunk). This module only provides the files:

- every file is a NumPy ``.npz`` written atomically (:func:`neurofa.atomic.atomic_write`);
- every file carries the run's *fingerprint*, a hash of the configuration, backend and seeds, and a checkpoint
  written by another configuration is refused with a one-line :class:`~neurofa.config.ConfigError`, never
  silently continued;
- the directory is deleted once the run's results are written (:meth:`neurofa.rundir.RunDirectory.finish`).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurofa.atomic import atomic_write
from neurofa.config import ConfigError
from neurofa.rundir import CHECKPOINT

__all__ = ["Checkpoint", "fingerprint", "DIRECTORY"]

#: the checkpoint directory inside a run directory
DIRECTORY = CHECKPOINT
_KEY = "__fingerprint__"


def fingerprint(config_text: str) -> str:
    """The hash that ties checkpoint files to a run (the text of its configuration, backend and seeds)."""
    return hashlib.sha1(config_text.encode()).hexdigest()[:16]


class Checkpoint:
    """The checkpoint files of one run in ``directory``, tied to it by ``fingerprint``."""

    def __init__(self, directory: str | Path, fingerprint: str):
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.npz"

    def save(self, name: str, arrays: Mapping[str, Any]) -> Path:
        """Write ``arrays`` (names → arrays or scalars) as ``name``.npz, atomically."""
        data = {key: np.asarray(value) for key, value in arrays.items()}
        data[_KEY] = np.asarray(self.fingerprint)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **data)  # type: ignore[arg-type]

        return atomic_write(self.path(name), write)

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``name``.npz, or None if it does not exist; a file of another run or an unreadable one
        is a ConfigError naming it."""
        path = self.path(name)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ConfigError(f"{path}: not a readable checkpoint ({exc}); remove the directory {self.directory} to "
                              "start over") from None
        found = str(arrays.pop(_KEY, ""))
        if found != self.fingerprint:
            raise ConfigError(f"{path} was written by another configuration or version of the code (fingerprint "
                              f"{found or 'none'}, this "
                              f"run {self.fingerprint}); resume with the configuration that wrote it, or remove "
                              f"{self.directory} to start over")
        return arrays
