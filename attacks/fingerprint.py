"""Black-box fingerprinting of a model-zoo serving system (PSML §4; the algorithm is ours).

The attacker knows neither the zoo nor the policy. (1) It picks probe inputs on which models
are likely to disagree: two screening queries (lowest and highest accuracy target, so the
cheapest and the most accurate model answer) rank candidates by disagreement, then by how unsure
the answers were (with top-1 labels only, it maps with more probes and keeps, afterwards, a few
that still separate every model found). (2) A response's
*signature* is its answers on the probes: equal signatures, same model. (3) The model chosen
changes only at finitely many thresholds of the requested accuracy (and latency), so a grid
plus bisection between specs with different signatures finds every threshold with
O(models x log(range / tolerance)) queries. (4) The trigger spec sits deepest inside the
target's accuracy interval, with the loosest latency the API accepts: a loose latency target
never changes a load-oblivious choice and keeps a load-aware one away from the latency
fallback. Its consistency under load is measured, and other accuracies of the interval are
tried if it falls short.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from attacks.agent import AttackerAgent, Signature
from attacks.config import FingerprintConfig, SpecConfig

Gen = Generator[simpy.Event, Any, Any]


@dataclass
class Segment:
    """An accuracy interval (at the loosest latency) answered by one signature."""

    lo: float
    hi: float
    signature: Signature

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass
class FingerprintResult:
    """The spec map, the chosen target and its trigger spec."""

    probes: np.ndarray
    segments: list[Segment]
    signatures: list[Signature]
    """Distinct signatures in order of first appearance along the accuracy axis."""
    target: Signature
    trigger: SpecConfig
    consistency: float
    """Share of the consistency queries answered with the target's signature."""


class Fingerprinter:
    """Runs the mapping as SimPy generators on behalf of an agent."""

    def __init__(self, agent: AttackerAgent, cfg: FingerprintConfig, candidates: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.agent = agent
        self.cfg = cfg
        self.candidates = candidates
        """Pool inputs the probes are chosen from."""
        self.rng = rng
        self.lat_min, self.lat_max = cfg.latency_range_ms
        self.probes = np.zeros(0, dtype=np.int64)
        self.answers: dict[Signature, np.ndarray] = {}
        """The answers behind each signature seen."""

    def sig(self, accuracy: float, latency_ms: float) -> Gen:
        """The signature a spec gets: the most frequent of ``repeats`` queries."""
        spec = SpecConfig(accuracy=accuracy, latency_ms=latency_ms)
        seen: dict[Signature, int] = {}
        for _ in range(self.cfg.repeats):
            obs = yield from self.agent.query(spec, self.probes)
            sig = self.agent.signature(obs)
            self.answers.setdefault(sig, obs.probe_answers)
            seen[sig] = seen.get(sig, 0) + 1
        return max(seen, key=lambda s: seen[s])

    # (1) probes ----------------------------------------------------------------------------
    def choose_probes(self, k: int) -> Gen:
        """The ``k`` candidates most likely to split models: those the cheapest and the most
        accurate model answer differently, then the least confident ones."""
        cands = self.candidates
        n = len(cands)
        answers = []
        for acc in (0.0, 100.0):
            obs = yield from self.agent.query(
                SpecConfig(accuracy=float(acc), latency_ms=self.lat_max), cands, identify=False,
                phase="screening")
            answers.append(obs.probe_answers)
        a = np.stack(answers)                                  # (specs, candidates, classes)
        labels = a.argmax(axis=2)
        distinct = np.array([len(set(labels[:, j])) for j in range(n)], dtype=float)
        unsure = 0.0 if self.agent.labels_only else 1 - a.max(axis=2).mean(axis=0)
        score = distinct + unsure + 1e-6 * self.rng.random(n)
        self.probes = cands[np.argsort(-score)[:k]]
        return self.probes

    # (2, 3) the accuracy axis ---------------------------------------------------------------
    def map_accuracy(self) -> Gen:
        grid = np.linspace(0, 100, self.cfg.grid).tolist()
        sigs = []
        for a in grid:
            s = yield from self.sig(a, self.lat_max)
            sigs.append(s)
        cuts: list[tuple[float, Signature]] = [(grid[0], sigs[0])]
        for i in range(1, len(grid)):
            a0, s0, a1, s1 = grid[i - 1], sigs[i - 1], grid[i], sigs[i]
            if s0 != s1:
                inner = yield from self._bisect_accuracy(a0, a1, s0, s1)
                cuts.extend(inner)
            cuts.append((a1, s1))
        return _segments(cuts)

    def _bisect_accuracy(self, lo: float, hi: float, s_lo: Signature,
                         s_hi: Signature) -> Gen:
        """Change points strictly inside (lo, hi), as (accuracy, signature above it) pairs."""
        if hi - lo <= self.cfg.accuracy_tolerance:
            return [((lo + hi) / 2, s_hi)]
        mid = (lo + hi) / 2
        s = yield from self.sig(mid, self.lat_max)
        if s == s_lo:
            return (yield from self._bisect_accuracy(mid, hi, s, s_hi))
        if s == s_hi:
            return (yield from self._bisect_accuracy(lo, mid, s_lo, s))
        left = yield from self._bisect_accuracy(lo, mid, s_lo, s)
        right = yield from self._bisect_accuracy(mid, hi, s, s_hi)
        return [*left, *right]

    # (4) the trigger spec and its consistency under load ----------------------------------
    def consistency(self, spec: SpecConfig, target: Signature, n: int) -> Gen:
        hits = 0
        for _ in range(n):
            obs = yield from self.agent.query(spec, self.probes, phase="consistency")
            hits += self.agent.signature(obs) == target
        return hits / n

    def trigger_for(self, seg: Segment) -> Gen:
        """The most robust spec for ``seg``'s signature, and its measured consistency."""
        cfg = self.cfg
        spec = SpecConfig(accuracy=(seg.lo + seg.hi) / 2, latency_ms=self.lat_max)
        rate = yield from self.consistency(spec, seg.signature, cfg.consistency_queries)
        if rate >= cfg.min_consistency:
            return spec, rate
        n_try = max(cfg.consistency_queries // 5, 2)
        options = [SpecConfig(accuracy=seg.lo + f * seg.width, latency_ms=self.lat_max)
                   for f in (0.1, 0.25, 0.75, 0.9)]
        best = (rate, spec)
        for option in options:
            r = yield from self.consistency(option, seg.signature, n_try)
            if r > best[0]:
                best = (r, option)
        if best[1] is not spec:
            rate = yield from self.consistency(best[1], seg.signature, cfg.consistency_queries)
            best = (rate, best[1])
        return best[1], best[0]

    def _reduce_probes(self, segments: list[Segment],
                       order: list[Signature]) -> tuple[list[Segment], list[Signature]]:
        cols = _reduce_probes_impl([self.answers[s] for s in order], self.cfg.probes)
        self.probes = self.probes[cols]

        def short(sig: Signature) -> Signature:
            return bytes(self.answers[sig].argmax(axis=1)[cols].astype(np.int8).tobytes())

        return ([Segment(s.lo, s.hi, short(s.signature)) for s in segments],
                list(dict.fromkeys(short(s) for s in order)))

    def run(self, pick: Any, probes: np.ndarray | None = None) -> Gen:
        """The whole procedure; ``pick(signatures in accuracy order)`` names the target's
        signature. ``probes`` skips probe selection (an attacker holding copies of the zoo
        chooses them offline)."""
        reduce = False
        if probes is not None:
            self.probes = probes
        elif self.agent.labels_only:
            # top-1 labels carry little information per input: map with more probes, then
            # keep a few that still tell the models found apart
            yield from self.choose_probes(self.cfg.map_probes)
            reduce = True
        else:
            yield from self.choose_probes(self.cfg.probes)
        segments = yield from self.map_accuracy()
        order: list[Signature] = []
        for s in segments:
            if s.signature not in order:
                order.append(s.signature)
        if reduce:
            segments, order = self._reduce_probes(segments, order)
        target = pick(order)
        seg = max((s for s in segments if s.signature == target), key=lambda s: s.width)
        trigger, rate = yield from self.trigger_for(seg)
        return FingerprintResult(self.probes, segments, order, target, trigger, rate)


def _reduce_probes_impl(answers: list[np.ndarray], k: int) -> list[int]:
    """Greedily pick ``k`` columns (probes) that keep the answer rows pairwise distinct."""
    labels = np.stack([a.argmax(axis=1) for a in answers])     # (signatures, probes)
    chosen: list[int] = []
    groups = [list(range(len(answers)))]
    for _ in range(min(k, labels.shape[1])):
        def parts(j: int, gs: list[list[int]] = groups) -> int:
            return sum(len({int(labels[i, j]) for i in g}) for g in gs)
        best = max((j for j in range(labels.shape[1]) if j not in chosen), key=parts)
        chosen.append(best)
        groups = [[i for i in g if labels[i, best] == v] for g in groups
                  for v in sorted({int(labels[i, best]) for i in g})]
    return chosen


def _segments(cuts: list[tuple[float, Signature]]) -> list[Segment]:
    """Merge the ordered (accuracy, signature-from-here) points into maximal segments."""
    segs: list[Segment] = []
    for (a, s), nxt in zip(cuts, [*cuts[1:], (cuts[-1][0], None)], strict=True):
        end = nxt[0]
        if segs and segs[-1].signature == s:
            segs[-1].hi = max(segs[-1].hi, end)
        else:
            segs.append(Segment(a, max(end, a), s))
    return segs


def identification_accuracy(truth: list[tuple[bytes, Signature, int]]) -> float:
    """How well signatures identify the serving model. Within each probe set, the smaller of
    the clusters' purity (each signature maps to one model) and inverse purity (each model to
    one signature); averaged over probe sets, weighted by responses."""
    if not truth:
        return float("nan")
    by_set: dict[bytes, list[tuple[Signature, int]]] = {}
    for key, sig, model in truth:
        by_set.setdefault(key, []).append((sig, model))
    total = sum(min(_purity(pairs, 0), _purity(pairs, 1)) * len(pairs)
                for pairs in by_set.values())
    return total / len(truth)


def _purity(pairs: list[tuple[Signature, int]], key: int) -> float:
    groups: dict[Any, dict[Any, int]] = {}
    for p in pairs:
        g = groups.setdefault(p[key], {})
        g[p[1 - key]] = g.get(p[1 - key], 0) + 1
    return sum(max(g.values()) for g in groups.values()) / len(pairs)
