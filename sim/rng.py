"""Named random streams derived from the scenario's single seed.

Every random consumer (arrivals of a tenant, its SLO draws, service-time jitter, defense noise,
attacker choices, torch training) gets its own ``numpy.random.Generator``. Streams are keyed by
*name*, not by creation order, so adding a consumer never shifts another one: a defended and an
undefended run with the same seed see the same arrivals (common random numbers). No code in
zoosim touches a global RNG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class SeedTree:
    """Derives independent, reproducible generators from one seed and a path of names."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed

    def generator(self, *names: str) -> np.random.Generator:
        """The generator for ``names`` (e.g. ``("arrivals", "web")``); same names, same stream."""
        key = tuple(_name_key(n) for n in names)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def integer_seed(self, *names: str) -> int:
        """A 63-bit integer seed for libraries that take one (e.g. ``torch.Generator``)."""
        return int(self.generator(*names).integers(0, 2**63 - 1))


BLOCK = 4096
"""How many values :class:`Buffered` (and :class:`sim.service_time.RandomFactor`) draw at once."""


class Buffered:
    """Draws random values in blocks and hands them out one at a time.

    Drawing one value from a numpy generator costs about a microsecond of call overhead; drawing
    4,096 at once amortises it, which matters on a per-request path. The sequence of values is a
    pure function of the generator, so determinism is kept.
    """

    __slots__ = ("_block", "_buf", "_draw", "_i")

    def __init__(self, draw: Callable[[int], np.ndarray], block: int = BLOCK) -> None:
        self._draw = draw
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self._draw(self._block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]
