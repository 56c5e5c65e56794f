"""Zoo profiles: the measured (or published) accuracy and latency of each zoo model.

A profile is versioned data written by the profiler (docs/architecture.md, "Zoo profiles");
code never hard-codes a latency or an accuracy. This module loads and validates profiles,
computes the accuracy/latency Pareto front that PSML's system model selects from (PSML §3),
interpolates latency between profiled batch sizes, and fits INFaaS's
``latency = slope * batch + intercept`` model (Romero et al., ATC'21).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from sim.errors import ConfigError
from sim.schema import Strict
from sim.yaml_io import read_yaml_file

PROFILE_DIR = Path(__file__).resolve().parent.parent / "zoo_profiles"
"""Where named profiles live (``zoo_profiles/<name>.yaml``)."""


class LatencyStat(Strict):
    """Latency of one batch size, milliseconds."""

    p50: Annotated[float, Field(gt=0)]
    p99: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _p99_not_below_p50(self) -> LatencyStat:
        if self.p99 < self.p50:
            raise ValueError(f"p99 ({self.p99}) is below p50 ({self.p50})")
        return self


class ModelProfile(Strict):
    """One zoo model as profiled."""

    name: Annotated[str, Field(min_length=1)]
    arch: str
    params: Annotated[int, Field(ge=0)]
    accuracy: Annotated[float, Field(ge=0, le=100)]
    latency_ms: dict[Annotated[int, Field(ge=1)], LatencyStat]
    memory_mb: Annotated[float, Field(ge=0)]
    load_ms: Annotated[float, Field(ge=0)]
    weights: str | None = None
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 (lowercase hex) of the weights file, written by the profiler and checked
    before the weights are used, so a corrupt or altered file is refused instead of served.
    None (profiles older than the field): loaded unchecked, with a warning."""

    @field_validator("latency_ms")
    @classmethod
    def _has_batch_one(cls, v: dict[int, LatencyStat]) -> dict[int, LatencyStat]:
        if 1 not in v:
            raise ValueError("the latency table needs batch size 1")
        return dict(sorted(v.items()))

    def latency_p50(self, batch: int) -> float:
        """Median latency (ms) of a batch: profiled, interpolated, or extrapolated linearly."""
        table = self.latency_ms
        if batch in table:
            return table[batch].p50
        sizes = list(table)
        if batch > sizes[-1]:
            if len(sizes) == 1:
                return table[sizes[0]].p50 * batch
            slope, _ = self.linear_fit()
            return table[sizes[-1]].p50 + max(slope, 0.0) * (batch - sizes[-1])
        hi = next(s for s in sizes if s > batch)
        lo = max(s for s in sizes if s < batch)
        w = (batch - lo) / (hi - lo)
        return table[lo].p50 * (1 - w) + table[hi].p50 * w

    def linear_fit(self) -> tuple[float, float]:
        """Least-squares ``(slope, intercept)`` in ms of p50 latency against batch size."""
        xs = list(self.latency_ms)
        ys = [s.p50 for s in self.latency_ms.values()]
        if len(xs) == 1:
            return 0.0, ys[0]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        return slope, my - slope * mx


class ProfileMetadata(Strict):
    """Where the figures come from; ``source`` says whether we measured them. The fields the
    code reads are typed; the profiler's notes (hardware, training, methods) ride along."""

    model_config = Strict.model_config | {"extra": "allow"}
    source: Literal["measured", "published", "synthetic"]
    batch_sizes: list[int] | None = None
    dataset: str | None = None
    """The dataset the models were trained and tested on (a name :mod:`zoo_profiles.datasets`
    loads); None for a zoo without one (synthetic figures)."""
    split_seed: int = 0
    """The seed of the dataset's train/attacker/test split."""
    input_shape: tuple[int, int, int] | None = None
    """One input's shape (channels, height, width); None: MNIST's (1, 28, 28)."""
    num_classes: Annotated[int, Field(ge=2)] = 10
    device: str | None = None
    """Where the figures were measured (``cpu``, ``cuda``), when known."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """One input's shape, MNIST's when the profile does not say."""
        return self.input_shape or (1, 28, 28)


class ZooProfile(Strict):
    """A whole zoo: metadata plus its models."""

    name: str
    metadata: ProfileMetadata
    models: Annotated[list[ModelProfile], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> ZooProfile:
        names = [m.name for m in self.models]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate model names: {sorted(dup)}")
        for m in self.models:
            missing = set(self.metadata.batch_sizes or ()) - set(m.latency_ms)
            if missing:
                raise ValueError(f"model {m.name!r}: batch sizes {sorted(missing)} missing "
                                 "from latency_ms (metadata.batch_sizes lists them)")
        return self

    def model(self, name: str) -> ModelProfile:
        """The model called ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in zoo {self.name!r}; have {self.names}")

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @cached_property
    def pareto_front(self) -> list[ModelProfile]:
        """Models no other model beats on both accuracy and batch-1 latency, fastest first.

        Along the front, latency and accuracy both increase strictly.
        """
        ordered = sorted(self.models, key=lambda m: (m.latency_p50(1), -m.accuracy))
        front: list[ModelProfile] = []
        for m in ordered:
            if not front or m.accuracy > front[-1].accuracy:
                front.append(m)
        return front


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``zoo_profiles/``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def resolve_profile_path(ref: str, base_dir: Path | None = None) -> Path:
    """A profile reference (a shipped name, or a path) as a file path."""
    candidates = [Path(ref).expanduser()]
    if base_dir is not None and not candidates[0].is_absolute():
        candidates.insert(0, base_dir / ref)
    candidates.append(PROFILE_DIR / f"{ref}.yaml")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ConfigError(f"zoo.profile: no profile {ref!r} (not a file, and not one of the shipped "
                      f"profiles: {', '.join(available_profiles()) or 'none'})")


def load_profile(ref: str | Path, base_dir: Path | None = None) -> ZooProfile:
    """Load and validate a profile; any problem is a :class:`ConfigError` naming the field."""
    path = resolve_profile_path(str(ref), base_dir)
    data: Any = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile is a mapping with name, metadata and models")
    try:
        return ZooProfile.model_validate(data)
    except ValidationError as e:
        from sim.config_errors import describe_validation_error

        raise ConfigError(f"{path}: {describe_validation_error(e, data, ZooProfile)}") from None


def l1_utility(acc_req: float, lat_req_ms: float, acc: float, lat_ms: float) -> float:
    """L1 utility (docs/paper.md) of serving a model (acc, lat) to a request (acc_req, lat_req)."""
    return ((1 - max(acc_req - acc, 0.0) / 100) + (1 - max(lat_ms - lat_req_ms, 0.0) / 100)) / 2


__all__ = ["LatencyStat", "ModelProfile", "ZooProfile", "available_profiles", "l1_utility",
           "load_profile"]
