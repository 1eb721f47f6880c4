"""Run directories that are complete and consistent, or visibly incomplete — never a mix.

A run directory holds ``config.yaml``, ``results.nc``, ``summary.json`` and ``figures/`` (and ``spikes.nc``,
``spikes.nwb`` where spikes were recorded and exported), and ``checkpoint/`` while a run with checkpoints is not
finished. :meth:`RunDirectory.open`
prepares one before anything is simulated:

- the location must be a directory or creatable as one, and writable (an existing file, a path under a file or an
  unwritable place is a :class:`~neurofa.config.ConfigError`, so the CLI stops at once with exit 2);
- a directory that already holds a run is refused unless ``overwrite`` (its old outputs are then removed first, so
  old figures never sit beside new results) or, for sweeps, ``resume``;
- a lock (``.lock``, ``flock``) refuses a second concurrent writer;
- temporaries left by an interrupted write (``.*.tmp``) are removed;
- the marker :data:`MARKER` says the directory is incomplete; :meth:`RunDirectory.finish` removes it (and the
  checkpoints) after ``summary.json``, which is written last. A killed run therefore leaves no ``summary.json``
  and the marker (and its checkpoints, from which ``neurofa run --resume`` continues).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from neurofa.config import ConfigError

__all__ = ["MARKER", "LOCK", "OUTPUTS", "RunDirectory", "is_complete"]

#: the file that marks a run directory as incomplete (JSON: command, pid, host, start time)
MARKER = "INCOMPLETE"
LOCK = ".lock"
#: what a finished run writes; an existing directory holding any of these is a run directory
#: the checkpoints of a run that is not finished (:mod:`neurofa.checkpoint`)
CHECKPOINT = "checkpoint"
OUTPUTS = ("summary.json", "results.nc", "spikes.nc", "spikes.nwb", "config.yaml", "figures", CHECKPOINT, MARKER)


def is_complete(directory: str | Path) -> bool:
    """A run directory is complete when it has ``results.nc`` and ``summary.json`` and no incomplete marker."""
    directory = Path(directory)
    return ((directory / "results.nc").exists() and (directory / "summary.json").exists()
            and not (directory / MARKER).exists())


def _check_location(path: Path, option: str, create: bool = True) -> None:
    """``path`` is a directory or can become one, and we may write there (one-line ConfigError otherwise);
    ``create`` makes it."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} = {str(path)!r} is an existing file; give a directory for the run's outputs")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} = {str(path)!r} is invalid: {str(probe)!r} is a file, not a directory")
    if not create:
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} = {str(path)!r} cannot be written ({str(probe)!r} is not writable)")
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} = {str(path)!r} cannot be created: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} = {str(path)!r} is not writable")


class RunDirectory:
    """A prepared run directory, locked by this process until :meth:`finish` or :meth:`release`."""

    def __init__(self, path: Path, lock: IO[str]):
        self.path = path
        self._lock: IO[str] | None = lock

    @staticmethod
    def check(path: str | Path, overwrite: bool = False, resume: bool = False, option: str = "--out") -> None:
        """What :meth:`open` would refuse, without creating or changing anything."""
        path = Path(path)
        _check_location(path, option, create=False)
        _refuse_existing(path, overwrite, resume, option)

    @classmethod
    def open(cls, path: str | Path, command: str = "run", overwrite: bool = False, resume: bool = False,
             option: str = "--out") -> RunDirectory:
        """Check, lock and mark ``path`` (see the module docstring); ``option`` names it in messages. With
        ``resume`` an existing run is continued: only its ``summary.json`` is removed, until it is rewritten."""
        path = Path(path)
        _check_location(path, option)
        lock = _acquire(path, option)
        try:
            _refuse_existing(path, overwrite, resume, option)
            for pattern in (".*.tmp", ".*.tmp.nwb"):  # atomic writes; the NWB writer's name keeps its extension
                for stale in path.glob(pattern):
                    stale.unlink(missing_ok=True)
            if overwrite:
                _remove_outputs(path)
            elif resume:
                (path / "summary.json").unlink(missing_ok=True)
            marker = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (path / MARKER).write_text(json.dumps(marker) + "\n")
        except BaseException:
            lock.close()
            raise
        return cls(path, lock)

    def finish(self) -> None:
        """The run is complete: remove its checkpoints and the marker (after ``summary.json``), then release the
        lock."""
        shutil.rmtree(self.path / CHECKPOINT, ignore_errors=True)
        (self.path / MARKER).unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Release the lock and leave the marker: the directory stays visibly incomplete."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _refuse_existing(path: Path, overwrite: bool, resume: bool, option: str) -> None:
    existing = [name for name in OUTPUTS if (path / name).exists()]
    if existing and not (overwrite or resume):
        hint = f", --resume {path} to continue it" if (path / CHECKPOINT).exists() else ""
        raise ConfigError(f"{option} = {str(path)!r} already holds a run ({', '.join(existing)}); give another "
                          f"directory{hint} or --overwrite")


def _acquire(path: Path, option: str) -> IO[str]:
    handle = open(path / LOCK, "a+")  # noqa: SIM115 (held until release)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(f"{option} = {str(path)!r} is being written by {holder}; wait for it or give another "
                          "directory") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _remove_outputs(path: Path) -> None:
    """Remove a previous run's outputs, ``summary.json`` first (so the directory never looks complete)."""
    for name in OUTPUTS:
        target = path / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
