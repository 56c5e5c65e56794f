"""Goodput that sees answers: what an output defense costs benign clients.

PAPER.md's goodput judges a request by the serving model's *profiled* accuracy and its latency,
so a defense that perturbs answers (top-1 only, rounding, reverse sigmoid, Gaussian noise on
the probabilities; PSML §5's baselines) costs nothing by construction. This second measure
gives every simulated request a real input: an index into the zoo's test split, drawn from its
own random stream (``("answers", "inputs")``). Every model's answers on that split are computed
once (one batched forward pass per model); a request's answer is its serving model's row,
perturbed by a copy of the defense drawing from its own stream (``("defense", "answers")``), so
the attacker's answers and the arrivals are unchanged (common random numbers). A request whose
perturbed top-1 differs from the unperturbed one is counted as lost (``answer_ok`` False).

Without an output defense every answer is intact, and ``goodput_answers`` equals ``goodput``;
with one, on a zoo without weights (published figures), it is unknown (null).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defense.base import Defense
from sim.errors import UserError


def answers_intact(models: np.ndarray, profile: str, base_dir: Path | None, defense: Defense,
                   rng: np.random.Generator) -> np.ndarray | None:
    """Per request (served by ``models[i]``): whether its answer's top-1 survived ``defense``.

    None when the zoo has no weights to answer with."""
    from attacks.victim import VictimZoo

    try:
        zoo = VictimZoo(profile, base_dir)
    except UserError:
        return None
    if not all(zoo.has_weights(m) for m in range(len(zoo))):
        return None
    test = zoo.dataset().test
    table = np.stack([zoo.probabilities(m, test.x) for m in range(len(zoo))])
    inputs = rng.integers(len(test), size=len(models))
    clean = table[np.asarray(models, dtype=np.int64), inputs]
    seen = defense.perturb_outputs(clean.copy())
    intact: np.ndarray = seen.argmax(axis=1) == clean.argmax(axis=1)
    return intact
