"""Experiments (not built yet; see issue 6): one YAML per study (a base scenario plus a grid of
parameters and seeds), the sweep runner on a local process pool or Dask, the plots, and
``zoosim reproduce``, which checks PSML's claims C1-C4 (arXiv 2307.01292) on the embedded zoo.
"""
