"""The plasticity rules of the microcircuit, one module each.

Importing a module registers its rule (:func:`neurofa.model.rule.register`); the imports below are the registry,
one line per rule. A new rule is a new module here plus its line.
"""

from neurofa.model.rules import apical_inhibition as apical_inhibition  # B^PI: −η_PI v_api r_Iᵀ
from neurofa.model.rules import fixed as fixed  # fa: fixed random B
from neurofa.model.rules import kolen_pollack as kolen_pollack  # kp: B mirrors ΔW_{ℓ+1}ᵀ, both decay
from neurofa.model.rules import pal as pal  # pal: B learns from apical noise
from neurofa.model.rules import transpose as transpose  # bp: B = W_{ℓ+1}ᵀ, B_PI = −B
from neurofa.model.rules import urbanczik as urbanczik  # W and W^IP: dendritic prediction

__all__ = ["apical_inhibition", "fixed", "kolen_pollack", "pal", "transpose", "urbanczik"]
