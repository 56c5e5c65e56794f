"""A study: one base scenario plus a grid of parameters and seeds (docs/configuration.md, "Study").

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

A point's result file is named by :meth:`Study.key`: a hash of everything its result depends
on that the study can see (the fully resolved scenario, the files it names, zoosim's version),
so that ``--resume`` after an edit of the base scenario, a profile or a trace, or a ``--quick``
run followed by a full one, recomputes the points that changed instead of returning stale ones.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import itertools
import json
from functools import cache
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
        self.points = self._validated(self._expand())

    def narrowed(self, fixed: dict[str, Any], vary: dict[str, list[Any]],
                 seeds: list[int]) -> Study:
        """The same study (base scenario, quick overrides) on a sub-grid: ``fixed``
        parameters at one value, ``vary`` over its values, with ``seeds``; the study's
        ``zip`` parameters that neither names still vary together. How a cell selected on the
        study's seeds is confirmed on fresh ones (experiments.claims)."""
        new = copy.copy(self)
        grid = {k: [value] for k, value in fixed.items()} | vary
        zipped = {k: v for k, v in self.cfg.zip.items() if k not in grid}
        new.cfg = self.cfg.model_copy(update={"grid": grid, "zip": zipped,
                                              "seeds": list(seeds), "quick": None})
        new.points = new._validated(new._expand())
        return new

    def _validated(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every point validated before any runs; a varied ``defense`` recorded in the form
        its scenario validated it to (a stack as a chain, at any depth), so the results hold
        one type of value per column whatever shorthand the study file used."""
        for p in points:
            scenario = self.scenario(p)
            if "defense" in p:
                p["defense"] = scenario.defense.model_dump(mode="json", exclude_unset=True)
        return points

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

    def key(self, point: dict[str, Any]) -> str:
        """A name for the point's result file that changes whenever its result may.

        The hash covers the validated scenario (base file, ``quick.set``, grid values and seed,
        defaults filled in), the kind, zoosim's version and the content of every file the
        scenario names: the zoo profile, the weights that profile lists, and any file path in
        the scenario (traces); and the point's own values, which its row carries: two points
        may validate to one scenario (an attacker-level ``spec`` is dropped for a strategy
        that takes none) and still each need their row. What it cannot see (code changed
        without a version bump, datasets downloaded elsewhere) is not covered.
        """
        from sim.profiles import resolve_profile_path

        resolved = self.scenario(point).model_dump(mode="json")
        profile = resolve_profile_path(resolved["zoo"]["profile"], self.base_path.parent)
        files = {"zoo.profile": _digest(profile)}
        for ref in _profile_files(str(profile), *_stamp(profile)):
            files[f"zoo.profile:{ref}"] = _digest(profile.parent / ref)
        for path in _file_paths(resolved):
            files[path] = _digest(Path(path))
        text = json.dumps({"zoosim": _version(), "kind": self.cfg.kind, "scenario": resolved,
                           "point": point, "files": files}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@cache
def _version() -> str:
    try:
        return importlib.metadata.version("zoosim")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _digest(path: Path) -> str:
    """The content hash of a file (cached on its path, size and mtime: keys are asked for many
    points naming the same few files)."""
    return _digest_cached(str(path.resolve()), *_stamp(path))


@cache
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@cache
def _profile_files(profile: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    """The files a profile lists (model weights, relative to its folder) that exist."""
    data = read_yaml(profile)
    models = data.get("models") if isinstance(data, dict) else None
    refs = [m.get("weights") for m in models or [] if isinstance(m, dict)]
    folder = Path(profile).parent
    return tuple(sorted(r for r in refs if isinstance(r, str) and (folder / r).is_file()))


def _file_paths(value: Any) -> list[str]:
    """Every string in a dumped scenario that is an absolute path to a file (the schema
    resolves the files a scenario names, e.g. traces, to absolute paths)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _file_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _file_paths(v)]
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_file():
        return [value]
    return []
