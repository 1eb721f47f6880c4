"""neurofa: cortical microcircuits that learn without weight transport.

Spiking dendritic microcircuits in Brian2 with always-on local plasticity, feedback weights that are fixed and
random (feedback alignment) or learned from noise (Phaseless Alignment Learning), and a numpy rate reference that
validates them. Importing the package registers every model kind, rule, task and backend with their checks.
"""

from neurofa._version import __version__
from neurofa.config import Config, ConfigError, load_config
from neurofa.model import Model, compile_model
from neurofa.results import Result
from neurofa.runner import run
from neurofa.sweep import sweep
from neurofa.validate import compare

__all__ = ["__version__", "Config", "ConfigError", "load_config", "Model", "compile_model", "Result", "run",
           "sweep", "compare"]
