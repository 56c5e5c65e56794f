"""Experiments: one YAML per study (a base scenario plus a grid of parameters and seeds), the
sweep runner on a local process pool or Dask, the reports and plots, and ``zoosim reproduce``,
which judges PSML's claims C1-C4 (arXiv 2307.01292) by rules fixed before the data
(:mod:`experiments.verdicts`).
"""
