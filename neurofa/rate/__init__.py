"""Numpy rate reference: discrete-time layered networks (:mod:`neurofa.rate.layered`, ``docs/science.md`` §1) and
the interpreter of the microcircuit's model description (:mod:`~neurofa.rate.dynamics` with the step schemes of
:mod:`~neurofa.rate.schemes`, driven by :mod:`~neurofa.rate.microcircuit`; §2). Nothing here imports Brian2."""
