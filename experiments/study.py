"""A study: one base scenario plus a grid of parameters and seeds (ARCHITECTURE.md, "Layout").

```yaml
kind: attack                 # attack | simulate
base: ../examples/attack-fingerprint.yaml   # relative to this file
grid:                        # cartesian product; keys are --set paths into the scenario
  attacker.strategy: [oracle, naive, fingerprint]
zip:                         # varied together (equal lengths), crossed with the grid
  attacker.target: [logreg, cnn_small]
  attacker.spec.accuracy: [90.0, 95.7]
seeds: [1, 2, 3]
```
Every point is validated (by the scenario schema) before anything runs: an unknown parameter
path or an empty grid is a ConfigError naming it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from sim.config import apply_override, parse_scenario, read_yaml
from sim.config_errors import describe_validation_error
from sim.errors import ConfigError
from sim.schema import Strict

Values = Annotated[list[Any], Field(min_length=1)]


class QuickConfig(Strict):
    """A smaller version of the study (``zoosim reproduce --quick``): grid and zip entries
    replaced, seeds replaced, and base-scenario overrides (``set``)."""

    grid: dict[str, Values] = Field(default_factory=dict)
    zip: dict[str, Values] = Field(default_factory=dict)
    seeds: Annotated[list[int], Field(min_length=1)] | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class StudyConfig(Strict):
    """The study file."""

    kind: Literal["attack", "simulate"]
    base: str
    grid: dict[str, Values] = Field(default_factory=dict)
    zip: dict[str, Values] = Field(default_factory=dict)
    seeds: Annotated[list[int], Field(min_length=1)] = Field(default_factory=lambda: [0])
    quick: QuickConfig | None = None

    def quickened(self) -> StudyConfig:
        """The quick version (itself when the study has no ``quick`` block)."""
        q = self.quick
        if q is None:
            return self
        return self.model_copy(update={"grid": {**self.grid, **q.grid},
                                       "zip": {**self.zip, **q.zip},
                                       "seeds": q.seeds or self.seeds})

    @model_validator(mode="after")
    def _shapes(self) -> StudyConfig:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip: every list needs the same length, got {sorted(lengths)}")
        if not self.grid and not self.zip and len(self.seeds) < 2:
            raise ValueError("grid: empty (give at least one parameter to vary, or seeds)")
        return self


class Study:
    """A loaded study: its points, each a dict of overrides (seed included)."""

    def __init__(self, path: Path, quick: bool = False) -> None:
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a study is a mapping (kind, base, grid, zip, seeds)")
        try:
            self.cfg = StudyConfig.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"{path}: {describe_validation_error(e, data, StudyConfig)}") \
                from None
        self.path = path
        self.base_path = (path.parent / self.cfg.base).resolve()
        base = read_yaml(self.base_path)
        if not isinstance(base, dict):
            raise ConfigError(f"{self.base_path}: the base scenario must be a mapping")
        self.base: dict[str, Any] = base
        if quick and self.cfg.quick is not None:
            for key, value in self.cfg.quick.set.items():
                apply_override(self.base, f"{key}={json.dumps(value)}")
            self.cfg = self.cfg.quickened()
        self.points = self._expand()
        for p in self.points:   # validate every point before running any
            self.scenario(p)

    def _expand(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        keys = list(cfg.grid)
        combos = list(itertools.product(*cfg.grid.values())) if keys else [()]
        zipped = list(zip(*cfg.zip.values(), strict=True)) if cfg.zip else [()]
        points = []
        for combo in combos:
            for z in zipped:
                for seed in cfg.seeds:
                    p = dict(zip(keys, combo, strict=True))
                    p.update(zip(cfg.zip, z, strict=True))
                    p["seed"] = seed
                    points.append(p)
        return points

    def scenario(self, point: dict[str, Any]) -> Any:
        """The validated scenario of one point."""
        from attacks.config import AttackScenario
        from sim.config import Scenario

        data = copy.deepcopy(self.base)
        for key, value in point.items():
            try:
                apply_override(data, f"{key}={json.dumps(value)}")
            except ConfigError as e:
                raise ConfigError(f"{self.path}: parameter {key!r}: {e}") from None
        model = AttackScenario if self.cfg.kind == "attack" else Scenario
        return parse_scenario(data, self.base_path.parent, f"{self.path} point {point}", model)


def point_key(point: dict[str, Any]) -> str:
    """A stable name for a point's result file."""
    text = json.dumps(point, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
