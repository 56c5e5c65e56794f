"""The attacker's strategies (PSML §4): how it chooses the spec of its extraction queries.

- ``oracle``: names the target model explicitly on every request: the classic single-model
  extraction, the paper's reference.
- ``naive``: one fixed spec; takes whatever model answers.
- ``fingerprint``: black-box mapping of the spec space (attacks.fingerprint), then extraction
  at the most robust trigger spec for the target (verified per response if ``verify``). Its
  mapping is paid from the same budget as its extraction (``budget_counts: sent``); if the
  budget runs out before the mapping is done, it stops there and reports it.
- ``known-zoo``: the same with copies of the zoo in hand: probes chosen offline to separate
  every model, and the target's signature known exactly (an upper bound).
Each is a SimPy generator run as the attacker's process.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from attacks.agent import AttackerAgent, BudgetExhausted, Extraction, Signature
from attacks.config import SpecConfig
from attacks.fingerprint import Fingerprinter, FingerprintResult
from attacks.responders import Responder


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


Flow = Callable[[AttackerAgent, Extraction, Plan, np.random.Generator, np.ndarray],
                Generator[simpy.Event, Any, None]]
"""(agent, extraction, plan, rng, probe candidates) -> the attacker's SimPy process."""


def oracle(agent: AttackerAgent, ext: Extraction, plan: Plan, rng: np.random.Generator,
           candidates: np.ndarray) -> Generator[simpy.Event, Any, None]:
    yield from ext.run(None, model=plan.target)


def naive(agent: AttackerAgent, ext: Extraction, plan: Plan, rng: np.random.Generator,
          candidates: np.ndarray) -> Generator[simpy.Event, Any, None]:
    spec = agent.cfg.spec
    assert spec is not None  # validated: naive needs a spec
    accuracy = spec.accuracy if spec.accuracy is not None else agent.zoo.accuracy[plan.target]
    yield from ext.run(SpecConfig(accuracy=accuracy, latency_ms=spec.latency_ms))


def _pick_by_rank(rank: float) -> Callable[[list[Signature]], Signature]:
    def pick(order: list[Signature]) -> Signature:
        return order[round(rank * (len(order) - 1))]
    return pick


def fingerprint(agent: AttackerAgent, ext: Extraction, plan: Plan, rng: np.random.Generator,
                candidates: np.ndarray) -> Generator[simpy.Event, Any, None]:
    fp = Fingerprinter(agent, agent.cfg.fingerprint, candidates, rng)
    try:
        result: FingerprintResult = yield from fp.run(_pick_by_rank(plan.target_rank))
    except BudgetExhausted:
        plan.fingerprint_complete = False   # nothing left to extract with
        return
    plan.fingerprint = result
    verify = result.target if agent.cfg.verify else None
    yield from ext.run(result.trigger, verify=verify, probes=result.probes)


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


def known_zoo(agent: AttackerAgent, ext: Extraction, plan: Plan, rng: np.random.Generator,
              candidates: np.ndarray) -> Generator[simpy.Event, Any, None]:
    n_models = len(agent.zoo)
    probes = separating_probes(agent.responder, n_models, candidates,
                               agent.cfg.fingerprint.probes, agent.labels_only)
    target_sig = agent.signature_of(plan.target, probes)
    fp = Fingerprinter(agent, agent.cfg.fingerprint, candidates, rng)
    by_rank = _pick_by_rank(plan.target_rank)

    def pick(order: list[Signature]) -> Signature:
        return target_sig if target_sig in order else by_rank(order)

    try:
        result: FingerprintResult = yield from fp.run(pick, probes=probes)
    except BudgetExhausted:
        plan.fingerprint_complete = False
        return
    plan.fingerprint = result
    verify = target_sig if agent.cfg.verify else None
    yield from ext.run(result.trigger, verify=verify, probes=probes)


STRATEGIES: dict[str, Flow] = {
    "oracle": oracle,
    "naive": naive,
    "fingerprint": fingerprint,
    "known-zoo": known_zoo,
}
