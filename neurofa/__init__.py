"""neurofa: cortical microcircuits that learn without weight transport.

Spiking dendritic microcircuits in Brian2 with always-on local plasticity, feedback weights that are fixed and
random (feedback alignment) or learned from noise (Phaseless Alignment Learning), and a numpy rate reference that
validates them.
"""

__version__ = "0.1.0"

from neurofa.config import Config, ConfigError, load_config
from neurofa.results import Result

__all__ = ["__version__", "Config", "ConfigError", "load_config", "Result", "run", "sweep", "compare"]


def __getattr__(name: str):  # the heavier entry points import on first use
    if name == "run":
        from neurofa.runner import run

        return run
    if name == "sweep":
        from neurofa.sweep import sweep

        return sweep
    if name == "compare":
        from neurofa.validate import compare

        return compare
    raise AttributeError(f"module 'neurofa' has no attribute {name!r}")
