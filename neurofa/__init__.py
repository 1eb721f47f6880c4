"""neurofa: cortical microcircuits that learn without weight transport.

Spiking dendritic microcircuits in Brian2 with always-on local plasticity, feedback weights that are fixed and
random (feedback alignment) or learned from noise (Phaseless Alignment Learning), and a numpy rate reference that
validates them. Importing the package registers every model kind, rule, task and backend with their checks.
``compare`` is imported on first use (it brings SciPy's statistics, 0.4 s, which a run does not need).
"""

from typing import TYPE_CHECKING, Any

from neurofa._version import __version__
from neurofa.config import Config, ConfigError, load_config
from neurofa.model import Model, compile_model
from neurofa.results import Result
from neurofa.runner import run
from neurofa.sweep import sweep  # eager: importing the submodule later would rebind ``neurofa.sweep`` to it

if TYPE_CHECKING:
    from neurofa.validate import compare

__all__ = ["__version__", "Config", "ConfigError", "load_config", "Model", "compile_model", "Result", "run",
           "sweep", "compare"]


def __getattr__(name: str) -> Any:
    """``neurofa.compare``, imported when first asked for (PEP 562)."""
    if name == "compare":
        from neurofa.validate import compare

        globals()["compare"] = compare
        return compare
    raise AttributeError(f"module 'neurofa' has no attribute {name!r}")
