"""neurofa: cortical microcircuits that learn without weight transport.

Spiking dendritic microcircuits in Brian2 with always-on local plasticity, feedback weights that are fixed and
random (feedback alignment) or learned from noise (Phaseless Alignment Learning), and a numpy rate reference that
validates them.
"""

__version__ = "0.1.0"
