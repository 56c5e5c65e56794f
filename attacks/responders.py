"""What the attacker gets back: the victim models' real answers on its inputs.

``TableResponder`` holds every zoo model's probabilities on the attacker's probe candidates
(a seeded sample of its pool), computed for real with one batched forward pass per model before
the simulation (docs/architecture.md, "Data flow"): during the simulation a probe's answer is a
table lookup, never a torch call per event. Extraction answers are computed after the run,
grouped by serving model (attacks.run).
``SyntheticResponder`` stands in for zoos without weights (the published CIFAR figures): each
model answers with its own fixed random probability vectors; it exists only to count the
queries fingerprinting needs, and is never used to train a surrogate.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Responder(Protocol):
    """Answers of zoo model ``model`` on pool inputs ``inputs`` (probabilities, (k, classes))."""

    def answers(self, model: int, inputs: np.ndarray) -> np.ndarray: ...


class TableResponder:
    """Precomputed probabilities of every model on some pool inputs (the attacker's probe
    candidates): ``table[model]`` of shape (len(inputs), classes)."""

    def __init__(self, table: np.ndarray, inputs: np.ndarray, pool_size: int) -> None:
        self.table = table
        self.inputs = inputs
        self._row = np.full(pool_size, -1, dtype=np.int64)
        self._row[inputs] = np.arange(len(inputs))

    def answers(self, model: int, inputs: np.ndarray) -> np.ndarray:
        rows = self._row[inputs]
        if (rows < 0).any():
            raise ValueError("asked for answers on inputs outside the precomputed candidates")
        out: np.ndarray = self.table[model][rows]
        return out


class SyntheticResponder:
    """Random but fixed answers per (model, input): distinct models answer distinctly."""

    def __init__(self, n_models: int, n_inputs: int, classes: int, rng: np.random.Generator,
                 confusion: float = 0.3) -> None:
        base = rng.dirichlet(np.full(classes, 0.3), size=n_inputs)
        table = np.empty((n_models, n_inputs, classes))
        for m in range(n_models):
            noise = rng.dirichlet(np.ones(classes), size=n_inputs)
            table[m] = (1 - confusion) * base + confusion * noise
        self.table = table

    def answers(self, model: int, inputs: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.table[model][inputs]
        return out
