"""Numpy rate reference: discrete-time layered networks (:mod:`neurofa.rate.layered`, SCIENCE.md §1) and the
continuous-time dendritic microcircuit (SCIENCE.md §2). Submodules are imported on demand."""
