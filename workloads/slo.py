"""SLO distributions: how each tenant draws the accuracy and latency its requests ask for.

Every request of a tenant carries an accuracy target (percent) and a latency target (ms) drawn
from these distributions (docs/paper.md: users "specify desired performance metrics").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.plugins import Context, PluginParams, Registry


class Distribution(ABC):
    """A scalar distribution drawn in vectorised blocks, from the tenant's ``slo/<tenant>``
    stream (its accuracy and latency distributions share it, drawing in turn)."""

    Params: ClassVar[type[PluginParams]]

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx
        """Its random stream is read at the first draw: validation builds a distribution
        without one, to ask for its :meth:`support`."""

    def sample(self, n: int) -> np.ndarray:
        """``n`` independent draws."""
        return self.draw(self.ctx.rng(), n)

    @abstractmethod
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws from ``rng``."""

    @abstractmethod
    def support(self) -> tuple[float, float]:
        """Smallest and largest value a draw can take."""


DISTRIBUTIONS: Registry[Distribution] = Registry("distribution", Distribution)
"""SLO distributions by the name an SLO block's ``{type: ...}`` uses."""


@DISTRIBUTIONS.register("fixed")
class Fixed(Distribution):
    """Always the same value."""

    class Params(PluginParams):
        type: Literal["fixed"] = "fixed"
        value: float

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.value = params.value

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    def support(self) -> tuple[float, float]:
        return self.value, self.value


@DISTRIBUTIONS.register("choice")
class Choice(Distribution):
    """One of ``values``, with optional ``weights`` (normalised)."""

    class Params(PluginParams):
        type: Literal["choice"] = "choice"
        values: Annotated[list[float], Field(min_length=1)]
        weights: list[Annotated[float, Field(ge=0)]] | None = None

        @model_validator(mode="after")
        def _weights_match(self) -> Choice.Params:
            if self.weights is not None:
                if len(self.weights) != len(self.values):
                    raise ValueError("weights must have one entry per value")
                if sum(self.weights) <= 0:
                    raise ValueError("weights must not all be zero")
            return self

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.values = np.asarray(params.values, dtype=float)
        w = params.weights
        self.p = None if w is None else np.asarray(w, dtype=float) / sum(w)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.values, size=n, p=self.p)

    def support(self) -> tuple[float, float]:
        return float(self.values.min()), float(self.values.max())


@DISTRIBUTIONS.register("uniform")
class Uniform(Distribution):
    """Uniform on ``[low, high]``."""

    class Params(PluginParams):
        type: Literal["uniform"] = "uniform"
        low: float
        high: float

        @model_validator(mode="after")
        def _ordered(self) -> Uniform.Params:
            if self.high < self.low:
                raise ValueError(f"high ({self.high}) is below low ({self.low})")
            return self

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.low, self.high = params.low, params.high

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def support(self) -> tuple[float, float]:
        return self.low, self.high

