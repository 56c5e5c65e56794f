"""Black-box fingerprinting of a model-zoo serving system (PSML §4; the algorithm is ours).

The attacker knows neither the zoo nor the policy, and it pays for every input it sends.

1. **Screening**: a few pool inputs (``screen``) are sent at the lowest and at the highest
   accuracy target, so the cheapest and the most accurate model answer them; the inputs on
   which the two differ most (then the least confident) become the *profile* probes. One
   profile-sized repeat of the highest target measures how much answers of one model vary
   (output noise): the identifier's threshold is learned from it (:mod:`attacks.identify`).
2. **Mapping**: the served model changes only at finitely many thresholds of the requested
   accuracy (at the loosest latency), and for a load-oblivious policy it does so
   monotonically. Bisection between two specs answered by different models finds every
   threshold to ``accuracy_tolerance`` with O(models x log(range / tolerance)) requests. A
   mapping request carries only the one or two inputs that best separate the two models it
   decides between (more when the answers are noisy), and its latency decides where answers
   cannot. An answer from neither is checked with the profile probes at the same spec: a model
   seen before (the first answer was noise) or a new one.
3. **The trigger**: the target (by rank on the map) is reached at the middle of its accuracy
   interval with the loosest latency the API accepts; its consistency under load is measured
   with inputs that separate the target from its neighbours, and other accuracies of the
   interval are tried if it falls short.

Under output noise or coarse answers two neighbours can answer every probe alike, and bisection
takes one for the other. The latency scan (:mod:`attacks.latency_scan`) then sends one-input
requests across each segment of the map: a step in their latency is a model hidden behind its
neighbour (more samples where a step is suggested), located, and named: the neighbouring
segment's model when as fast (bisection misplaced their threshold), else a model of its own.

When one spec is seen answered by several models (spec noise, DP selection), the adaptive
attacker (``fingerprint.sample_requests``) maps again by sampling (:mod:`attacks.sampling`).
It repeats the highest target in screening until two answers are equal (a selection that
varies draws some model twice; output noise never repeats an answer); when even that spec is
answered by several models, the selection is random everywhere: bisection is skipped,
screening's models are forgotten (its batches may have been answered by different models)
and the sampling map starts on the whole accuracy range, narrowing to where the answers
vary.

A sanity bound keeps a broken identification from inventing models: more models than
``max_models`` (or than one in three mapping answers) is implausible; the attacker then says
so and maps again on top-1 labels, which output noise perturbs least.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import simpy

from attacks import latency_scan
from attacks.agent import AttackerAgent, Observation
from attacks.config import FingerprintConfig, SpecConfig
from attacks.identify import EXACT, Cluster, Decision, Identifier, sq_distance
from attacks.sampling import Sightings, window
from sim.request import Request

Gen = Generator[simpy.Event, Any, Any]
Pick = Callable[[list[Cluster], Identifier, np.ndarray], Cluster]
"""(models in accuracy order, the identifier, the profile probes) -> the target."""


FAR_REPEATS = 3
"""Exact answers asked at the middle of a latency step's far side: a selection that varies
there (spec noise blurring a threshold) answers with two models within a few."""

LOCATE_SAMPLES = 7
"""One-input requests per step of the latency bisection that locates a hidden model's
threshold."""

ADAPTIVE_SCREEN_REPEATS = 6
"""Most repeats of the highest accuracy target the adaptive attacker sends while screening,
until two answers are equal: a selection spread evenly over k models answers 6 requests with 6
different models with probability (k-1)!/((k-6)! k^5): 0.04 for 7 models, 0.15 for 10. Output
noise makes every answer differ and uses all 6."""


class Implausible(Exception):
    """Identification found more models than a zoo can plausibly hold."""


@dataclass
class Segment:
    """An accuracy interval (at the loosest latency) answered by one model."""

    lo: float
    hi: float
    model: Cluster

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass
class Verifier:
    """Probes riding along extraction requests and the test their answers must pass."""

    probes: np.ndarray
    accept: Callable[[Observation], bool]


@dataclass
class FingerprintResult:
    """The spec map, the chosen target and its trigger spec."""

    probes: np.ndarray
    """The profile probes."""
    segments: list[Segment]
    models: list[Cluster]
    """Models told apart, in accuracy order (of each one's widest interval on the map)."""
    target: Cluster
    trigger: SpecConfig
    consistency: float
    """Share of the consistency queries identified as the target."""
    identifier: Identifier
    outputs: Literal["probabilities", "labels"]
    """What identification used: ``probabilities`` or ``labels`` (after a fallback)."""
    noisy: bool = False
    """Answers varied between repeats (every request carried the profile probes)."""
    warning: str | None = None
    varies: bool = False
    """One spec was seen answered by several models (the selection is randomised)."""
    sampled: int = 0
    """Requests of the sampling map (0: the bisection map was kept)."""
    split: int = 0
    """Models the latency scan found hidden behind a neighbour."""

    def neighbours(self) -> list[Cluster]:
        """The target's neighbours on the map (the models it is most easily confused with)."""
        i = self.models.index(self.target)
        return [m for m in (self.models[i - 1] if i else None,
                            self.models[i + 1] if i + 1 < len(self.models) else None) if m]

    def rivals(self) -> list[Cluster]:
        """The target, then the models an answer meant for it may come from: its neighbours
        on a deterministic map, every model when the selection varies."""
        near = [] if self.varies else self.neighbours()
        return [self.target, *(near or [m for m in self.models if m is not self.target])]

    def verifier(self, agent: AttackerAgent, k_max: int, labels: bool) -> Verifier:
        """Riders for extraction requests and the test of their answers (the target's)."""
        ident = self.identifier
        group = self.rivals()
        probes = self.probes if self.noisy or len(group) < 2 else \
            ident.separating(group, 1, k_max)

        def accept(obs: Observation) -> bool:
            # an extraction request carries more inputs than the probes' own requests and is
            # sent pipelined: its latency does not compare, so the answers decide alone
            answers = _as_labels(obs.probe_answers) if labels else obs.probe_answers
            # among the map's models: a cluster a noisy answer once made and no segment kept
            # (a stray, like the target's answers) must not make the target's answers unsure
            found = ident.classify(probes, answers, float("nan"), self.models)
            if found is None and not ident.exact and \
                    ident.prefers(self.target, group[1:], probes, answers):
                found = self.target   # noisy: the target's by a likelihood ratio
            agent.record(found, obs.request)
            if found is self.target:
                ident.assign(found, probes, answers, float("nan"))
            return found is self.target

        return Verifier(probes, accept)


def _as_labels(answers: np.ndarray) -> np.ndarray:
    """Top-1 labels as one-hot rows."""
    out: np.ndarray = np.eye(answers.shape[1], dtype=np.float32)[answers.argmax(axis=1)]
    return out


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
        self.labels = agent.labels_only
        self.ident = Identifier(cfg.noise_z, cfg.latency)
        self.profile = np.zeros(0, dtype=np.int64)
        self.mapping_answers = 0
        self.noisy = False
        """The answers vary between repeats: every request then carries the profile."""
        self.varies = False
        """One spec was answered by several models (the selection is randomised)."""
        self.at_top = 1
        """Distinct exact answers to the highest target in screening: models the sampling
        map must place at least."""
        self.coarse = False
        """The answers are coarse (most inputs answered alike by the cheapest and the most
        accurate model): screened and profiled like top-1 labels."""
        self.origin: dict[Cluster, float] = {}
        """The accuracy each model was first seen answering (its own, whatever came later)."""
        self.split = 0
        """Models the latency scan found."""
        self.mapped: list[Cluster] | None = None
        """The map's models, once it is drawn (None: every cluster; a noisy answer can make a
        stray cluster that no segment keeps)."""

    @property
    def sizes(self) -> tuple[int, int]:
        """Screened inputs and profile probes: coarse answers (labels) say less per input,
        so more of both."""
        cfg = self.cfg
        coarse = self.labels or self.coarse
        return ((cfg.screen or (64 if coarse else 16)),
                (cfg.probes or (32 if coarse else 8)))

    @property
    def k_min(self) -> int:
        """Inputs per mapping request when the answers are exact."""
        if self.cfg.mapping_probes is not None:
            return self.cfg.mapping_probes
        return 2 if self.labels or self.coarse else 1

    # -- one query -----------------------------------------------------------------------
    def ask(self, accuracy: float, probes: np.ndarray, phase: str) -> Gen:
        """Send ``probes`` at ``accuracy`` (loosest latency); the answers as identification
        sees them (one-hot labels after a fallback) and the observation."""
        spec = SpecConfig(accuracy=accuracy, latency_ms=self.lat_max)
        obs: Observation = yield from self.agent.query(spec, probes, phase=phase)
        answers = _as_labels(obs.probe_answers) if self.labels else obs.probe_answers
        return answers, obs

    # (1) screening ---------------------------------------------------------------------------
    def screen(self, probes: np.ndarray | None) -> Gen:
        """The cheapest and the most accurate model on screening inputs; the profile probes;
        the spread of repeated answers. ``probes`` (known-zoo: chosen offline) are screened
        and profiled as they are."""
        ident = self.ident
        cands, lo, hi, requests = yield from self._screen_inputs(probes)
        score = np.zeros(len(cands))
        if probes is None:
            differ = sq_distance(lo, hi)
            unsure = 1 - 0.5 * (lo.max(axis=1) + hi.max(axis=1))
            score = differ + 0.1 * unsure + 1e-9 * self.rng.random(len(cands))
            self.profile = np.sort(cands[np.argsort(-score)[:self.sizes[1]]])
        else:
            self.profile = cands
        nan = float("nan")   # screening latencies are of other request sizes: not kept
        best = ident.new_cluster(cands, hi, nan)
        self.origin[best] = 100.0
        # repeats of the highest target: output noise makes every answer differ; a selection
        # that varies (spec noise, DP selection) leaves two of them equal sooner or later. The
        # paper's attacker asks twice; the adaptive one until two are equal, at most
        # ADAPTIVE_SCREEN_REPEATS times (its docstring)
        rows = np.searchsorted(cands, self.profile)
        repeats: list[tuple[np.ndarray, Observation]] = []
        answers = [hi[rows]]
        equal: list[bool] = []
        tries = ADAPTIVE_SCREEN_REPEATS if self.cfg.sample_requests else 2
        while len(repeats) < tries and (len(repeats) < 2 or not any(equal)):
            a, o = yield from self.ask(100.0, self.profile, "screening")
            repeats.append((a, o))
            equal += [bool((sq_distance(x, a) <= EXACT).all()) for x in answers]
            answers.append(a)
        self.noisy = not any(equal)
        self.varies = any(equal) and not all(equal)
        if not self.noisy:   # models seen answering the highest target
            self.at_top = sum(not any((sq_distance(a, b) <= EXACT).all() for b in answers[:i])
                              for i, a in enumerate(answers))
        ident.exact = not self.noisy
        for a, o in repeats:
            if self.noisy or (sq_distance(a, hi[rows]) <= EXACT).all():
                ident.assign(best, self.profile, a, o.latency_ms)
                self.agent.record(best, o.request)
            else:
                self.agent.record(None, o.request)
        at_least = 1
        if self.noisy:
            # noisy answers: every request carries the same, larger profile (so latencies
            # compare too), and both ends are asked until their means and latencies are known
            at_least = self.cfg.max_average
            if probes is None:   # more inputs screened: the profile takes the most telling
                more_c, more_lo, more_hi, more_req = yield from self._screen_inputs(
                    None, exclude=cands, n=16 * self.cfg.max_probes - len(cands))
                if len(more_c):   # none left when coarse answers screened every candidate
                    ident.assign(best, more_c, more_hi, nan)
                    cands, lo = np.concatenate([cands, more_c]), np.concatenate([lo, more_lo])
                    hi = np.concatenate([hi, more_hi])
                requests += more_req
                score = sq_distance(lo, hi) + 1e-9 * self.rng.random(len(cands))
                self.profile = np.sort(cands[np.argsort(-score)[:self.cfg.max_probes]])
            for _ in range(at_least - 1):
                a, o = yield from self.ask(100.0, self.profile, "screening")
                ident.assign(best, self.profile, a, o.latency_ms)
                self.agent.record(best, o.request)
        # is the cheapest model another one? (noisy answers at 0 are averaged first: inside
        # the threshold of a lone candidate is weak evidence of sameness)
        same, seen = yield from self.settle(0.0, self.profile, [best], "screening",
                                            at_least=at_least)
        low = cheap = best
        if same.model is not best:
            low = cheap = ident.new_cluster(cands, lo, nan)
            self.origin[cheap] = 0.0
        elif self.noisy or (sq_distance(lo[rows], hi[rows]) <= EXACT).all():
            ident.assign(best, cands, lo, nan)
        else:   # exact answers at 0 unlike the best's, then like them: two models, one spec
            self.varies = True
            low = ident.new_cluster(cands, lo, nan)
        self._take(cheap, self.profile, seen)
        for req, c in zip(requests, (low, best) * (len(requests) // 2), strict=True):
            self.agent.record(c, req)
        return cheap, best

    def _screen_inputs(self, probes: np.ndarray | None, exclude: np.ndarray | None = None,
                       n: int | None = None) -> Gen:
        """Answers at the lowest and the highest accuracy target on screening inputs:
        ``probes`` if given, else a batch of candidates (``n`` of them, none of
        ``exclude``); coarse answers (labels, one-hot, rounded: the two models answer most
        inputs alike) get more batches, until enough inputs separate the two (half the
        profile) or the candidates run out."""
        pool = self.candidates if exclude is None else np.setdiff1d(self.candidates, exclude)
        order = self.rng.permutation(pool) if probes is None else probes
        if n is not None:
            order = order[:max(n, 0)]
        cands: list[np.ndarray] = []
        lo: list[np.ndarray] = []
        hi: list[np.ndarray] = []
        requests: list[Request] = []
        done = 0
        while done < len(order):
            batch = np.sort(order[done:done + (n or self.sizes[0])])
            done += len(batch)
            for acc, out in ((0.0, lo), (100.0, hi)):
                answers, obs = yield from self.ask(acc, batch, "screening")
                out.append(answers)
                requests.append(obs.request)
            cands.append(batch)
            if probes is not None or n is not None:
                break
            differ = sq_distance(np.concatenate(lo), np.concatenate(hi)) > EXACT
            if not self.coarse and len(cands) == 1 and differ.mean() <= 0.75:
                self.coarse = True   # screened and profiled as for top-1 labels from now on
            if not (self.coarse or self.labels) or differ.sum() >= self.sizes[1] // 2:
                break
        if not cands:
            shape = (0, 0)
            return np.zeros(0, np.int64), np.zeros(shape), np.zeros(shape), requests
        c, a, b = np.concatenate(cands), np.concatenate(lo), np.concatenate(hi)
        idx = np.argsort(c)
        return c[idx], a[idx], b[idx], requests

    # (2) the accuracy axis ---------------------------------------------------------------
    def identify_at(self, accuracy: float, pair: tuple[Cluster, Cluster]) -> Gen:
        """The model answering ``accuracy``: the most frequent of ``repeats`` identifications."""
        votes: dict[int, int] = {}
        found: dict[int, Cluster] = {}
        for _ in range(self.cfg.repeats):
            c = yield from self._identify_once(accuracy, pair)
            votes[c.index] = votes.get(c.index, 0) + 1
            found[c.index] = c
        # with noisy answers a split vote may be a misidentification: only exact ones tell
        self.varies |= len(votes) > 1 and not self.noisy
        return found[max(votes, key=lambda i: votes[i])]

    def settle(self, accuracy: float, probes: np.ndarray, among: list[Cluster] | None,
               phase: str, first: tuple[np.ndarray, Observation] | None = None,
               at_least: int = 1) -> Gen:
        """Ask ``probes`` at ``accuracy`` until one model is clearly nearest (or none is):
        answers at one spec are averaged, which shrinks output noise, at least ``at_least``
        and at most ``max_average`` times (``first``: an answer already in hand). Returns the
        decision and every (answers, observation)."""
        seen: list[tuple[np.ndarray, Observation]] = []
        total = None
        decision = Decision(None, True)
        latencies: list[float] = []
        for r in range(1, self.cfg.max_average + 1):
            if r == 1 and first is not None:
                answers, obs = first
            else:
                answers, obs = yield from self.ask(accuracy, probes, phase)
            seen.append((answers, obs))
            latencies.append(obs.latency_ms)
            total = answers.astype(np.float64) if total is None else total + answers
            decision = self.ident.decide(probes, total / r, latencies, among)
            if decision.sure and r >= at_least:
                break
        return decision, seen

    def _take(self, c: Cluster, probes: np.ndarray,
              seen: list[tuple[np.ndarray, Observation]]) -> None:
        """Assign answers to ``c``; with exact answers, one that differs from what ``c``
        answered before is another model's (the selection varied), and is left out."""
        for answers, obs in seen:
            if not self.noisy and c.knows(probes) and \
                    self.ident.distance(c, probes, answers) > EXACT:
                self.varies = True   # exact answers of another model at the same spec
                self.agent.record(self.ident.classify(probes, answers, obs.latency_ms),
                                  obs.request)
                continue
            self.ident.assign(c, probes, answers, obs.latency_ms)
            self.agent.record(c, obs.request)

    def probes_for(self, group: list[Cluster]) -> np.ndarray:
        """The inputs of a request that tells ``group[0]`` from the rest of ``group``: the
        profile when answers are noisy, the best separating ones otherwise."""
        if self.noisy or len(group) < 2:
            return self.profile
        return self.ident.separating(group, self.k_min, self.cfg.max_probes)

    def _identify_once(self, accuracy: float, pair: tuple[Cluster, Cluster]) -> Gen:
        ident = self.ident
        probes = self.probes_for(list(pair))
        decision, seen = yield from self.settle(accuracy, probes, list(pair), "mapping",
                                                at_least=5 if self.noisy else 1)
        self.mapping_answers += 1
        if decision.model is not None:
            self._take(decision.model, probes, seen)
            return decision.model
        if self.noisy:   # the answers in hand already carry the profile
            full, full_seen = decision, seen
            mean = np.mean([a for a, _ in seen], axis=0)
            full = ident.decide(probes, mean, [o.latency_ms for _, o in seen])
            seen = []
        else:            # neither of the two: ask the profile probes at the same spec
            full, full_seen = yield from self.settle(accuracy, self.profile, None, "mapping")
        c = full.model
        if c is None:
            answers, obs = full_seen[0]
            c = ident.new_cluster(self.profile, answers, obs.latency_ms)
            self.origin[c] = accuracy
            self.agent.record(c, obs.request)
            full_seen = full_seen[1:]
            self._check_plausible()
        self._take(c, self.profile, full_seen)
        self._take(c, probes, seen)
        return c

    def _check_plausible(self) -> None:
        n = len(self.ident.clusters)
        if n > self.cfg.max_models or (n > 8 and n > self.mapping_answers / 3):
            raise Implausible(f"{n} distinct models after {self.mapping_answers} mapping "
                              "answers")

    def map_accuracy(self, cheap: Cluster, best: Cluster) -> Gen:
        if cheap is best:
            return [Segment(0.0, 100.0, cheap)]
        inner = yield from self._bisect(0.0, 100.0, cheap, best)
        return _segments([(0.0, cheap), *inner, (100.0, best)])

    def _bisect(self, lo: float, hi: float, a: Cluster, b: Cluster) -> Gen:
        """Change points strictly inside (lo, hi), as (accuracy, model above it) pairs."""
        if hi - lo <= self.cfg.accuracy_tolerance:
            return [((lo + hi) / 2, b)]
        mid = (lo + hi) / 2
        c = yield from self.identify_at(mid, (a, b))
        if c is a:
            return (yield from self._bisect(mid, hi, a, b))
        if c is b:
            return (yield from self._bisect(lo, mid, a, b))
        left = yield from self._bisect(lo, mid, a, c)
        right = yield from self._bisect(mid, hi, c, b)
        return [*left, (mid, c), *right]

    # (2c) a model hidden behind its neighbour: the latency scan ----------------------------
    @property
    def scan_wanted(self) -> bool:
        """Whether two models may answer every probe alike (noisy or coarse answers) on a map
        with one model per spec, and latency may be used: exact probabilities tell any two
        models apart, and a selection that varies has no latency step to find."""
        return bool(self.cfg.scan_samples and self.cfg.latency and not self.varies
                    and (self.noisy or self.coarse or self.labels))

    def scan(self, segments: list[Segment]) -> Gen:
        """``segments`` with every model hidden behind a neighbour split off
        (:mod:`attacks.latency_scan`), adjacent segments of one model merged."""
        out: list[Segment] = []
        for i, seg in enumerate(segments):
            above = segments[i + 1] if i + 1 < len(segments) else None
            out += yield from self._split(seg, out[-1] if out else None, above)
        merged: list[Segment] = []
        for seg in out:
            if merged and merged[-1].model is seg.model:
                merged[-1].hi = seg.hi
            else:
                merged.append(seg)
        return merged

    def _timings(self, accuracies: np.ndarray) -> Gen:
        """Log latencies of one-input requests at ``accuracies`` (latency is all they are for:
        no identification is recorded)."""
        out = []
        for a in accuracies:
            _, obs = yield from self.ask(float(a), self.profile[:1], "mapping")
            out.append(np.log(max(obs.latency_ms, 1e-9)))
        return np.asarray(out)

    def _split(self, seg: Segment, below: Segment | None, above: Segment | None) -> Gen:
        """``seg``, split at every latency step the scan finds (each side scanned afresh);
        ``below``, ``above``: the segments next to it (a side may be theirs). Once the
        selection is seen to vary, there is no step to find: the rest is left as it is."""
        if self.varies or seg.width <= 2 * self.cfg.accuracy_tolerance:
            return [seg]
        n = self.cfg.scan_samples
        step = yield from latency_scan.find_step(seg.lo, seg.hi, n, self.rng, self._timings)
        if step is None:
            return [seg]
        at = yield from self._locate(seg, step[1], step[2])
        old = seg.model
        keep_left = self.origin.get(old, seg.hi) < at
        far, next_to = ((at, seg.hi), above) if keep_left else ((seg.lo, at), below)
        new = yield from self._name_far(far, old, next_to)
        if new is None:
            return [seg]
        lower = Segment(seg.lo, at, old if keep_left else new)
        upper = Segment(at, seg.hi, new if keep_left else old)
        pieces = yield from self._split(lower, below, upper)
        return [*pieces, *(yield from self._split(upper, pieces[-1], above))]

    def _locate(self, seg: Segment, left: np.ndarray, right: np.ndarray) -> Gen:
        """The latency step in ``seg``, bracketed to ``accuracy_tolerance`` by bisection
        (``left``, ``right``: the scan's latencies either side of it)."""
        lo, hi = seg.lo, seg.hi
        while hi - lo > self.cfg.accuracy_tolerance:
            mid = (lo + hi) / 2
            sample = yield from self._timings(np.full(LOCATE_SAMPLES, mid))
            if latency_scan.nearer_left(sample, left, right):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    def _name_far(self, far: tuple[float, float], old: Cluster,
                  next_to: Segment | None) -> Gen:
        """The model answering the accuracies ``far`` (beyond a latency step from ``old``'s):
        profiled at their middle (noisy answers averaged, exact ones asked
        :data:`FAR_REPEATS` times). Exact answers that differ from each other show a selection
        that varies there: the step is a mixture, not a model (None). Answers that clearly are
        a known model's other than ``old`` make it that one. Otherwise latency decides: as
        fast as the neighbouring segment's model, it is that one (bisection misplaced their
        threshold); else a model of its own, which its answers could not tell from ``old``."""
        at_least = self.cfg.max_average if self.noisy else FAR_REPEATS
        decision, seen = yield from self.settle(sum(far) / 2, self.profile, None, "mapping",
                                                at_least=at_least)
        if not self.noisy and any((sq_distance(a, seen[0][0]) > EXACT).any() for a, _ in seen):
            self.varies = True   # e.g. a threshold blurred by spec noise
            for a, o in seen:
                self.agent.record(self.ident.classify(self.profile, a, o.latency_ms), o.request)
            return None
        known = decision.model if decision.sure and decision.model is not old else None
        if known is None and next_to is not None and next_to.model is not old:
            same = yield from latency_scan.same_model(
                far, (next_to.lo, next_to.hi), self.cfg.scan_samples, self.rng, self._timings)
            known = next_to.model if same else None
        if known is not None:
            self._take(known, self.profile, seen)
            return known
        answers, obs = seen[0]
        c = self.ident.new_cluster(self.profile, answers, obs.latency_ms)
        self.origin[c] = sum(far) / 2
        self.agent.record(c, obs.request)
        for a, o in seen[1:]:
            self.ident.assign(c, self.profile, a, o.latency_ms)
            self.agent.record(c, o.request)
        self.split += 1
        self._check_plausible()
        return c

    # (2b) a selection that varies: the sampling map ---------------------------------------
    def sight(self, accuracy: float) -> Gen:
        """One request carrying the profile at ``accuracy``: the model that answered it (a new
        one where exact answers fit nobody), or None where noisy answers leave it unclear."""
        ident = self.ident
        answers, obs = yield from self.ask(accuracy, self.profile, "mapping")
        self.mapping_answers += 1
        d = ident.decide(self.profile, answers, [obs.latency_ms])
        c = d.model if d.sure or d.inside == 1 else None
        if d.model is None and d.sure and not self.noisy:
            c = ident.new_cluster(self.profile, answers, obs.latency_ms)
            self._check_plausible()
        elif c is not None:
            ident.assign(c, self.profile, answers, obs.latency_ms)
        self.agent.record(c, obs.request)
        return c

    def sample_map(self, segments: list[Segment], pick: Pick) -> Gen:
        """Sample accuracies uniformly over the window of bisection's thresholds until the
        models and the target's place among them are settled, or ``sample_requests`` are
        spent (:mod:`attacks.sampling`). Returns the sightings, the models in order, the
        target (None when no answer could be identified), whether its place was settled and
        the requests sent."""
        lo, hi = window([s.lo for s in segments[1:]])
        whole = not segments[1:]   # no thresholds: the window narrows to where answers vary
        seen = Sightings()
        models: list[Cluster] = []
        target: Cluster | None = None
        resolved = False
        check = max(10, 2 * len(self.ident.clusters))
        key: np.ndarray | None = None
        keyed = -1   # the number of models the key input was chosen for
        n = 0
        while n < self.cfg.sample_requests:
            n += 1
            accuracy = float(self.rng.uniform(lo, hi))
            c = yield from self.sight(accuracy)
            if c is not None:
                seen.add(accuracy, c)
            if keyed != len(self.ident.clusters):
                key, keyed = self._key_input(), len(self.ident.clusters)
            if key is not None and n < self.cfg.sample_requests:
                n += 1
                yield from self.time(float(self.rng.uniform(lo, hi)), key, seen)
            if seen.total and (n % check < 2 or n >= self.cfg.sample_requests):
                models = seen.order()
                target = pick(models, self.ident, self.profile)
                # a model known from screening but not sampled yet is unplaced
                resolved = len(models) >= max(len(self.ident.clusters), self.at_top) and \
                    seen.resolved(models, target)
                if resolved:
                    break
                if whole:
                    lo, hi = window(seen.varying())
        return seen, models, target, resolved, n

    def _key_input(self) -> np.ndarray | None:
        """The profile input on which every two known models answer differently (the one whose
        closest two answers are farthest apart), or None where no input tells them all apart
        (coarse answers)."""
        clusters = [c for c in self.ident.clusters if c.knows(self.profile)]
        if len(clusters) < 2:
            return None
        means = np.stack([c.mean(self.profile) for c in clusters])   # (models, probes, classes)
        gaps = np.min([sq_distance(means[i], means[j]) for i in range(len(clusters))
                       for j in range(i + 1, len(clusters))], axis=0)
        best = int(np.argmax(gaps))
        return self.profile[best:best + 1] if gaps[best] > EXACT else None

    def time(self, accuracy: float, key: np.ndarray, seen: Sightings) -> Gen:
        """One request carrying the key input alone: its batch-1 latency is a sample of the
        model that served it, named by its exact answer (attacks.sampling)."""
        answers, obs = yield from self.ask(accuracy, key, "mapping")
        d = self.ident.decide(key, answers, [float("nan")])
        c = d.model if d.sure else None
        if c is not None:
            self.ident.assign(c, key, answers, obs.latency_ms)
            seen.time(c, obs.latency_ms)
        self.agent.record(c, obs.request)

    # (3) the trigger spec and its consistency under load ----------------------------------
    def consistency(self, accuracy: float, target: Cluster, group: list[Cluster],
                    n: int) -> Gen:
        ident = self.ident
        probes = self.probes_for(group)
        hits = 0
        for _ in range(n):
            answers, obs = yield from self.ask(accuracy, probes, "consistency")
            c = ident.decide(probes, answers, [obs.latency_ms], self.mapped).model
            self.agent.record(c, obs.request)
            if c is not None:
                ident.assign(c, probes, answers, obs.latency_ms)
            hits += c is target
        return hits / n

    def trigger_for(self, seg: Segment, group: list[Cluster]) -> Gen:
        """The most robust spec for ``seg``'s model, and its measured consistency."""
        cfg = self.cfg
        acc = (seg.lo + seg.hi) / 2
        rate = yield from self.consistency(acc, seg.model, group, cfg.consistency_queries)
        if rate >= cfg.min_consistency:
            return SpecConfig(accuracy=acc, latency_ms=self.lat_max), rate
        n_try = max(cfg.consistency_queries // 5, 2)
        best = (rate, acc)
        for f in (0.1, 0.25, 0.75, 0.9):
            option = seg.lo + f * seg.width
            r = yield from self.consistency(option, seg.model, group, n_try)
            if r > best[0]:
                best = (r, option)
        if best[1] != acc:
            rate = yield from self.consistency(best[1], seg.model, group,
                                               cfg.consistency_queries)
            best = (rate, best[1])
        return SpecConfig(accuracy=best[1], latency_ms=self.lat_max), best[0]

    # -- the whole procedure ---------------------------------------------------------------
    def run(self, pick: Pick, probes: np.ndarray | None = None) -> Gen:
        """Screen, map, pick the target (``pick``), find its trigger spec. ``probes`` skips
        the choice of profile probes (an attacker holding copies of the zoo chooses them
        offline). An implausible map is redone on top-1 labels once (``warning`` says so)."""
        warning = None
        scored = len(self.agent.truth)
        try:
            segments = yield from self._map(probes)
        except Implausible as e:
            if self.labels:
                raise
            abandoned = len(self.agent.truth) - scored
            del self.agent.truth[scored:]   # their models were another map's: not scored
            warning = (f"implausible map ({e}); identification fell back to top-1 labels "
                       f"(the {abandoned} answers of the abandoned map are not scored)")
            self.labels = True
            self.ident = Identifier(self.cfg.noise_z, self.cfg.latency)
            self.mapping_answers = 0
            self.noisy = self.coarse = False
            segments = yield from self._map(probes)
        if segments and self.scan_wanted:
            segments = yield from self.scan(segments)
        # in accuracy order of each model's widest interval: under a noisy selection a model
        # also turns up in stray slivers, which must not move it on the map
        widest: dict[Cluster, Segment] = {}
        for seg in segments:
            if seg.model not in widest or seg.width > widest[seg.model].width:
                widest[seg.model] = seg
        models = sorted(widest, key=lambda m: (widest[m].lo + widest[m].hi) / 2)
        sampled = 0
        if self.varies and self.cfg.sample_requests and not self.noisy:
            seen, order, chosen, resolved, sampled = yield from self.sample_map(segments, pick)
            if chosen is not None:
                models, target = order, chosen
                if not resolved:
                    warning = _join(warning, f"the sampling map left the target's rank among the "
                                             f"models unsettled after {sampled} "
                                             "requests (fingerprint.sample_requests)")
                self.mapped = models
                spec = SpecConfig(accuracy=seen.best_accuracy(target), latency_ms=self.lat_max)
                rivals = [target, *(m for m in models if m is not target)]
                rate = yield from self.consistency(spec.accuracy, target, rivals,
                                                   self.cfg.consistency_queries)
                return FingerprintResult(self.profile, segments, models, target, spec, rate,
                                         self.ident, self._identified_on, self.noisy,
                                         warning, True, sampled, self.split)
            if not segments:
                raise Implausible(f"no answer of {sampled} sampling requests could be "
                                  "identified")
            warning = _join(warning, "no sampled answer could be identified: the bisection "
                                     "map was kept")
        self.mapped = models
        target = pick(models, self.ident, self.profile)
        seg = max((s for s in segments if s.model is target), key=lambda s: s.width)
        i = models.index(target)
        group = [target, *models[max(i - 1, 0):i], *models[i + 1:i + 2]]
        trigger, rate = yield from self.trigger_for(seg, group)
        return FingerprintResult(self.profile, segments, models, target, trigger, rate,
                                 self.ident, self._identified_on, self.noisy, warning,
                                 self.varies, sampled, self.split)

    @property
    def _identified_on(self) -> Literal["probabilities", "labels"]:
        return "labels" if self.labels else "probabilities"

    def _map(self, probes: np.ndarray | None) -> Gen:
        """The bisection map; none (``[]``) when screening saw the selection vary and the
        sampling map is to be drawn instead."""
        first = len(self.agent.truth)
        cheap, best = yield from self.screen(probes)
        if self.varies and self.cfg.sample_requests:
            # the highest target is answered by several models: the selection is random
            # everywhere and bisection would chase its draws. Screening's batches may each
            # have been answered by another model, so its models are forgotten (its answers
            # scored as unidentified) and the sampling map starts afresh on the whole range
            self.agent.truth[first:] = [(-1, req) for _, req in self.agent.truth[first:]]
            self.ident = Identifier(self.cfg.noise_z, self.cfg.latency)
            self.ident.exact = True
            return []
        return (yield from self.map_accuracy(cheap, best))


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"


def _segments(cuts: list[tuple[float, Cluster]]) -> list[Segment]:
    """Merge the ordered (accuracy, model-from-here) points into maximal segments."""
    segs: list[Segment] = []
    for (a, s), nxt in zip(cuts, [*cuts[1:], (cuts[-1][0], None)], strict=True):
        end = nxt[0]
        if segs and segs[-1].model is s:
            segs[-1].hi = max(segs[-1].hi, end)
        else:
            segs.append(Segment(a, max(end, a), s))
    return [s for s in segs if s.width > 0 or len(segs) == 1]


def identification_accuracy(truth: list[tuple[int, int]]) -> float:
    """How well the attacker's models match the real ones: over every identification
    attempt (the attacker's model, the model that really served; -1 for "nobody known"),
    the smaller of the purity (each of its models is one real model) and the inverse purity
    (each real model is one of its models)."""
    if not truth:
        return float("nan")
    return min(_purity(truth, 0), _purity(truth, 1))


def _purity(pairs: list[tuple[int, int]], key: int) -> float:
    groups: dict[int, dict[int, int]] = {}
    for p in pairs:
        g = groups.setdefault(p[key], {})
        g[p[1 - key]] = g.get(p[1 - key], 0) + 1
    return sum(max(g.values()) for g in groups.values()) / len(pairs)
