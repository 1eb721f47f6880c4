"""The backend-neutral model description of the microcircuit and the registry of its plasticity rules.

``compile_model(cfg) -> Model``: populations and projections, each projection with its rule
(:mod:`neurofa.model.description`); the rules, one module each, in :mod:`neurofa.model.rules`; what a rule
declares, in :mod:`neurofa.model.rule`.
"""

from neurofa.model import rules as rules  # registers every rule before the description uses the registry
from neurofa.model.description import Model, Population, Projection, check_microcircuit, compile_model
from neurofa.model.rule import FEEDBACK, RULES, FeedbackRule, Hebbian, Rule, SynapseCode, TimeScale

__all__ = [
    "Model",
    "Population",
    "Projection",
    "compile_model",
    "check_microcircuit",
    "Rule",
    "FeedbackRule",
    "Hebbian",
    "SynapseCode",
    "TimeScale",
    "RULES",
    "FEEDBACK",
]
