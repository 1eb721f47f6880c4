"""Reproductions of the seed papers' theory, each a ``neurofa theory NAME``.

Every experiment module defines a ``Settings`` dataclass (overridable with ``--set``) and
``run(settings, quick=False, progress=True) -> Result``; its result's ``figures`` are drawn by ``figure(result,
directory)``.
"""

from __future__ import annotations

import difflib
from types import ModuleType

from neurofa.config import ConfigError
from neurofa.theory import lillicrap2016, robertson2023, song2021

EXPERIMENTS: dict[str, ModuleType] = {
    "song2021": song2021,
    "robertson2023": robertson2023,
    "lillicrap2016": lillicrap2016,
}


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name``; raises ConfigError listing the allowed names."""
    if name not in EXPERIMENTS:
        close = difflib.get_close_matches(name, list(EXPERIMENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"theory {name!r} is unknown{hint}; allowed: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
