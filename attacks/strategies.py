"""The attacker's strategies (PSML §4): how it chooses the spec of its extraction queries.

- ``oracle``: names the target model explicitly on every request: the classic single-model
  extraction, the paper's reference.
- ``naive``: one fixed spec (its ``spec`` parameter); takes whatever model answers.
- ``fingerprint``: black-box mapping of the spec space (attacks.fingerprint), then extraction
  at the most robust trigger spec for the target (verified per response if ``verify``). Its
  mapping is paid from the same budget as its extraction (``budget_counts: sent``); if the
  budget runs out before the mapping is done, it stops there and reports it.
- ``known-zoo``: the same with copies of the zoo in hand: probes chosen offline to separate
  every model, and the target identified by its copy's answers (an upper bound).

Each is a class of the :data:`STRATEGIES` registry (the plugin contract of :mod:`sim.plugins`),
built as ``cls(params, ctx)`` with the attacker's random stream in ``ctx``; its
:meth:`Strategy.run` is the attacker's SimPy process. Another package adds a strategy with
``@STRATEGIES.register("name")`` and selects it with ``attacker.strategy: {type: name, ...}``.

The agent and the fingerprinter are imported where they are used: :mod:`attacks.config` needs
this registry for its schema, and they need the config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
import simpy
from pydantic import Field

from sim.plugins import Context, PluginParams, Registry
from sim.schema import Strict

if TYPE_CHECKING:
    from attacks.agent import AttackerAgent, Extraction
    from attacks.fingerprint import FingerprintResult, Pick
    from attacks.identify import Cluster, Identifier
    from attacks.responders import Responder

Process = Generator[simpy.Event, Any, None]
"""The attacker's SimPy process."""


@dataclass
class Plan:
    """What the harness knows of the target and what the strategy found."""

    target: int
    """The target's model number (ground truth, used by oracle and for scoring)."""
    target_rank: float
    """The target's place on the Pareto front, 0 (least accurate) .. 1 (most accurate): what a
    black-box attacker is told to aim at."""
    fingerprint: FingerprintResult | None = None
    fingerprint_complete: bool = True
    """False when the budget ran out before the mapping and the trigger spec were done (the
    attack then has nothing left to extract with: a legitimate, reported outcome)."""
    extra: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """How the attacker spends its budget: one SimPy process per attack."""

    Params: ClassVar[type[PluginParams]]
    fingerprints: ClassVar[bool] = False
    """It maps the spec space first, so its budget can run out before it extracts (attack.json
    then reports ``fingerprint.complete``)."""
    names_model: ClassVar[bool] = False
    """It names the model in its requests (a live server must offer the model API)."""

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params

    @abstractmethod
    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        """The attacker's process: query through ``agent``, extract with ``ext``, record what
        it found in ``plan``; ``candidates`` are the pool inputs probes may be chosen from."""


STRATEGIES: Registry[Strategy] = Registry("strategy", Strategy)
"""Strategies by the name ``attacker.strategy`` uses."""


@STRATEGIES.register("oracle")
class Oracle(Strategy):
    """Names the target on every request: single-model extraction, the paper's reference."""

    names_model = True

    class Params(PluginParams):
        type: Literal["oracle"] = "oracle"

    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        yield from ext.run(None, model=plan.target)


class NaiveSpecConfig(Strict):
    """The naive attacker's fixed spec; no accuracy means the target's published accuracy."""

    accuracy: Annotated[float, Field(ge=0, le=100)] | None = None
    latency_ms: Annotated[float, Field(gt=0)]


@STRATEGIES.register("naive")
class Naive(Strategy):
    """One fixed spec, whatever model answers it: what an attacker unaware of the zoo does."""

    class Params(PluginParams):
        type: Literal["naive"] = "naive"
        spec: NaiveSpecConfig
        """The spec sent on every request (accuracy defaults to the target's)."""

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.spec = params.spec

    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        from attacks.config import SpecConfig

        spec = self.spec
        accuracy = spec.accuracy if spec.accuracy is not None else agent.zoo.accuracy[plan.target]
        yield from ext.run(SpecConfig(accuracy=accuracy, latency_ms=spec.latency_ms))


def _pick_by_rank(rank: float) -> Pick:
    def pick(models: list[Cluster], ident: Identifier, probes: np.ndarray) -> Cluster:
        return models[round(rank * (len(models) - 1))]
    return pick


class Mapping(Strategy):
    """Base of the strategies that map the spec space first (their budget can run out before
    they extract); they draw from the attacker's stream."""

    fingerprints = True

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rng = ctx.rng()

    def fingerprint_and_extract(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
                                candidates: np.ndarray, pick: Pick,
                                probes: np.ndarray | None = None) -> Process:
        """Map the spec space, then extract at the trigger spec (verified if
        ``attacker.verify``). A budget that runs out, or a map that stays implausible, ends
        the attack before extraction (reported as ``fingerprint.complete: false``)."""
        from attacks.agent import BudgetExhausted
        from attacks.fingerprint import Fingerprinter, Implausible

        cfg = agent.cfg
        fp = Fingerprinter(agent, cfg.fingerprint, candidates, self.rng)
        try:
            result: FingerprintResult = yield from fp.run(pick, probes=probes)
        except BudgetExhausted:
            plan.fingerprint_complete = False   # nothing left to extract with
            return
        except Implausible as e:
            plan.fingerprint_complete = False
            plan.extra["warning"] = f"implausible map on top-1 labels too ({e}); no extraction"
            return
        plan.fingerprint = result
        verify = result.verifier(agent, cfg.fingerprint.max_probes, fp.labels) \
            if cfg.verify else None
        yield from ext.run(result.trigger, verify=verify)


@STRATEGIES.register("fingerprint")
class Fingerprint(Mapping):
    """Black-box mapping of the spec space, then extraction at the target's trigger spec.

    The algorithm's knobs are ``attacker.fingerprint`` (shared with ``known-zoo``, and read for
    every strategy when the probe candidates are drawn)."""

    class Params(PluginParams):
        type: Literal["fingerprint"] = "fingerprint"

    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        yield from self.fingerprint_and_extract(agent, ext, plan, candidates,
                                                _pick_by_rank(plan.target_rank))


def separating_probes(responder: Responder, n_models: int, candidates: np.ndarray, k: int,
                      labels_only: bool) -> np.ndarray:
    """Greedy offline choice of ``k`` probes that tell the most models apart (copies in hand)."""
    answers = np.stack([responder.answers(m, candidates) for m in range(n_models)])
    keys = answers.argmax(axis=2) if labels_only else np.round(answers, 2)
    chosen: list[int] = []
    groups = [list(range(n_models))]
    for _ in range(k):
        counts = [_split_count(keys, groups, i) for i in range(len(candidates))]
        best = int(np.argmax(counts))
        chosen.append(int(candidates[best]))
        groups = [list(members) for g in groups for members in _split(g, keys[:, best])]
    return np.asarray(chosen, dtype=np.int64)


def _split_count(keys: np.ndarray, groups: list[list[int]], i: int) -> int:
    return sum(len({keys[m, i].tobytes() for m in g}) for g in groups)


def _split(group: list[int], key: np.ndarray) -> list[list[int]]:
    out: dict[bytes, list[int]] = {}
    for m in group:
        out.setdefault(np.asarray(key[m]).tobytes(), []).append(m)
    return list(out.values())


@STRATEGIES.register("known-zoo")
class KnownZoo(Mapping):
    """Fingerprinting with copies of the zoo in hand: an upper bound on identification."""

    class Params(PluginParams):
        type: Literal["known-zoo"] = "known-zoo"

    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        n_models = len(agent.zoo)
        probes = np.sort(separating_probes(agent.responder, n_models, candidates,
                                           agent.cfg.fingerprint.probes or 8,
                                           agent.labels_only))
        truth = agent.link.offline_answers(plan.target, probes)
        if agent.labels_only:
            truth = np.eye(truth.shape[1])[truth.argmax(axis=1)]

        def pick(models: list[Cluster], ident: Identifier, profile: np.ndarray) -> Cluster:
            return min(models, key=lambda m: ident.distance(m, profile, truth)
                       if m.knows(profile) else float("inf"))

        yield from self.fingerprint_and_extract(agent, ext, plan, candidates, pick, probes)
