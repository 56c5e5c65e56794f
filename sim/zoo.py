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
        self.dispatch_ms = dispatch_ms
        self.dispatch_s = dispatch_ms / 1000
        self.names = profile.names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.accuracy = [m.accuracy for m in profile.models]
        self.memory_mb = [m.memory_mb for m in profile.models]
        self.load_s = [m.load_ms * time_scale / 1000 for m in profile.models]
        self.batch_s: list[list[float]] = []
        self.lat1_ms: list[float] = []
        """Batch-1 latency (ms) straight from the profile: ``p50 * time_scale + dispatch_ms``,
        exactly the profile's p50 when ``time_scale`` is 1 and ``dispatch_ms`` 0 (not a round
        trip through seconds, which turned 31.3203125 into 31.320312500000004 and made a
        request asking exactly that latency infeasible). ``batch_s[m][1]`` is this / 1000, so a
        target in ms divided by 1000 compares with it the same way."""
        for m in profile.models:
            if latency_model == "linear":
                slope, icpt = m.linear_fit()
                ms = [0.0] + [max(icpt + slope * b, 1e-6) for b in range(1, max_batch + 1)]
            else:
                ms = [0.0] + [m.latency_p50(b) for b in range(1, max_batch + 1)]
            self.batch_s.append([0.0] + [self._ms(x) / 1000 for x in ms[1:]])
            self.lat1_ms.append(self._ms(ms[1]))
        self.front = [self.index[m.name] for m in profile.pareto_front]
        """Pareto-front model numbers, fastest (and least accurate) first."""

    def meets(self, m: int, acc: float, lat_ms: float) -> bool:
        """Whether model ``m`` meets an accuracy and a latency target: profiled accuracy at
        least ``acc``, batch-1 latency at most ``lat_ms`` (the feasibility of docs/paper.md)."""
        return self.accuracy[m] >= acc and self.lat1_ms[m] <= lat_ms

    def batch_time_s(self, m: int, inputs: int) -> float:
        """Median service time (s) of ``inputs`` inputs on model ``m``, any batch size."""
        table = self.batch_s[m]
        if inputs < len(table):
            return table[inputs]
        model = self.profile.models[m]
        if self.latency_model == "linear":
            slope, icpt = model.linear_fit()
            return self._ms(max(icpt + slope * inputs, 1e-6)) / 1000
        return self._ms(model.latency_p50(inputs)) / 1000

    def _ms(self, profiled_ms: float) -> float:
        """A profiled batch time (ms) as served: scaled, plus the per-batch dispatch cost."""
        return profiled_ms * self.time_scale + self.dispatch_ms

    def __len__(self) -> int:
        return len(self.names)
