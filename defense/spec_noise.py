"""Spec noise, the defense PSML proposes (§5, claim C3): noise on the requested metrics.

``spec' = spec + noise``, independently per request and metric, then clipped to the API's range
(accuracy in [0, 100] %, latency >= ``latency_min_ms``). The three families share one knob, the
noise's *standard deviation*, so their protection/goodput curves are comparable: Gaussian
N(0, sd²); Laplace with scale b = sd/√2; uniform on [-sd·√3, sd·√3]. The latency noise's sd is
``latency_sd_ms + latency_sd_rel * requested latency`` (absolute, relative, or both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from defense.base import DEFENSES, SpecPerturber
from sim.plugins import Context, PluginParams
from sim.request import Request
from sim.rng import Buffered

NonNegative = Annotated[float, Field(ge=0)]


class NoiseParams(PluginParams):
    """Noise scales, shared by the three families."""

    accuracy_sd: NonNegative = 0.0
    """Standard deviation of the noise on the requested accuracy (points)."""
    latency_sd_ms: NonNegative = 0.0
    """Absolute part of the latency noise's standard deviation (ms)."""
    latency_sd_rel: NonNegative = 0.0
    """Relative part: a fraction of the requested latency added to ``latency_sd_ms``."""
    latency_min_ms: Annotated[float, Field(gt=0)] = 0.01
    """The perturbed latency is clipped to at least this (ms)."""


class SpecNoise(SpecPerturber):
    """Adds unit-variance noise, scaled per metric, to each request's spec."""

    unit: Callable[[np.random.Generator, int], np.ndarray]

    def __init__(self, params: NoiseParams, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.p = params
        rng = self.rng
        draw = type(self).unit
        self._acc = Buffered(lambda n: draw(rng, n))
        self._lat = Buffered(lambda n: draw(rng, n))

    def perturb(self, req: Request) -> None:
        p = self.p
        za, zl = self._acc(), self._lat()
        req.acc_spec = min(100.0, max(0.0, req.acc_spec + p.accuracy_sd * za))
        sd = p.latency_sd_ms + p.latency_sd_rel * req.lat_req_ms
        req.lat_spec_ms = max(p.latency_min_ms, req.lat_spec_ms + sd * zl)


@DEFENSES.register("gaussian")
class GaussianNoise(SpecNoise):
    """Gaussian spec noise."""

    class Params(NoiseParams):
        type: Literal["gaussian"] = "gaussian"

    @staticmethod
    def unit(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal(n)


@DEFENSES.register("laplace")
class LaplaceNoise(SpecNoise):
    """Laplace spec noise (heavier tails at the same sd)."""

    class Params(NoiseParams):
        type: Literal["laplace"] = "laplace"

    @staticmethod
    def unit(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.laplace(0.0, 1 / math.sqrt(2), n)


@DEFENSES.register("uniform")
class UniformNoise(SpecNoise):
    """Uniform spec noise (bounded)."""

    class Params(NoiseParams):
        type: Literal["uniform"] = "uniform"

    @staticmethod
    def unit(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(-math.sqrt(3), math.sqrt(3), n)
