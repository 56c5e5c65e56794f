"""The zoo as the engine uses it: a profile compiled into flat per-model lookup tables.

Times are in simulated seconds, already multiplied by ``time_scale``. ``batch_s[m][b]`` is the
median service time of a batch of ``b`` requests on model ``m`` (profiled, interpolated between
profiled sizes, or from the INFaaS linear fit; see :mod:`sim.profiles`), plus ``dispatch_ms``:
a fixed host cost per batch beyond the profiled forward pass (a serving runtime's hand-off of
the batch to its worker and of the answers back; Clockwork, OSDI'20, models the same fixed
"action overhead"). It is 0 unless calibrated against a live server (:mod:`serve.simcheck`).
"""

from __future__ import annotations

from typing import Literal

from sim.profiles import ZooProfile

LatencyModel = Literal["interpolate", "linear"]


class Zoo:
    """Per-model arrays indexed by model number (the order of the profile)."""

    def __init__(self, profile: ZooProfile, max_batch: int, time_scale: float = 1.0,
                 latency_model: LatencyModel = "interpolate", dispatch_ms: float = 0.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if dispatch_ms < 0:
            raise ValueError(f"dispatch_ms must be >= 0, got {dispatch_ms}")
        self.profile = profile
        self.time_scale = time_scale
        self.latency_model = latency_model
        self.dispatch_s = dispatch_ms / 1000
        self.names = profile.names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.accuracy = [m.accuracy for m in profile.models]
        self.memory_mb = [m.memory_mb for m in profile.models]
        self.load_s = [m.load_ms * time_scale / 1000 for m in profile.models]
        self.batch_s: list[list[float]] = []
        for m in profile.models:
            if latency_model == "linear":
                slope, icpt = m.linear_fit()
                ms = [0.0] + [max(icpt + slope * b, 1e-6) for b in range(1, max_batch + 1)]
            else:
                ms = [0.0] + [m.latency_p50(b) for b in range(1, max_batch + 1)]
            self.batch_s.append([0.0] + [x * time_scale / 1000 + self.dispatch_s for x in ms[1:]])
        self.lat1_ms = [t[1] * 1000 for t in self.batch_s]
        self.front = [self.index[m.name] for m in profile.pareto_front]
        """Pareto-front model numbers, fastest (and least accurate) first."""

    def batch_time_s(self, m: int, inputs: int) -> float:
        """Median service time (s) of ``inputs`` inputs on model ``m``, any batch size."""
        table = self.batch_s[m]
        if inputs < len(table):
            return table[inputs]
        model = self.profile.models[m]
        if self.latency_model == "linear":
            slope, icpt = model.linear_fit()
            return max(icpt + slope * inputs, 1e-6) * self.time_scale / 1000 + self.dispatch_s
        return model.latency_p50(inputs) * self.time_scale / 1000 + self.dispatch_s

    def __len__(self) -> int:
        return len(self.names)
