"""The attacker as a tenant of a model-zoo serving system (PSML §4).

The agent sends requests (a spec plus a payload of pool inputs) at most ``rate_rps`` per
second and sees, for each, only the answers on its inputs (probabilities or top-1 labels) and
the end-to-end latency: never the serving model's name. A ledger counts every input and
request it spends, by phase.

The agent reaches the serving system through a :class:`Link`: :class:`SimLink` submits to the
simulated system (answers come from the responder's table), :class:`attacks.live.HttpLink`
sends the inputs to a live server over HTTP (answers are the server's). Which model served
each request is ground truth for scoring only: the agent keeps the request objects and the
harness reads ``request.model`` afterwards (the live link fills it in from the server's
records, where it keeps them).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from attacks.config import AttackerConfig, BudgetCounts, SpecConfig
from attacks.report import QueriesReport, RequestCounts
from attacks.responders import Responder
from sim.request import Request
from sim.run import Simulation
from sim.zoo import Zoo

if TYPE_CHECKING:
    from attacks.fingerprint import Verifier

@dataclass
class Payload:
    """Inputs of one request: pool indices for extraction (with pixel shifts) and probes."""

    extract: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    """Rows of (pool index, dx, dy)."""
    probes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    phase: str = "mapping"
    """``screening``, ``mapping``, ``consistency`` (fingerprinting) or ``extraction``."""


@dataclass
class Observation:
    """What the attacker sees of one response."""

    probe_answers: np.ndarray
    latency_ms: float
    request: Request
    """Kept for bookkeeping by the harness; strategies must not read ``request.model``."""


FINGERPRINT_PHASES = ("screening", "mapping", "consistency")
"""The phases of fingerprinting; with ``extraction`` (and its ``verification`` riders) they
make up everything an attacker sends."""


MAX_REJECTIONS = 1000
"""Consecutive refusals of one query after which the attacker gives it up (a server whose
admission never lets it through ends the attack instead of looping)."""


def identity_names(k: int) -> list[str]:
    """The attacker's client identities as tenant names: ``attacker``, ``attacker.2``, ..."""
    return ["attacker", *(f"attacker.{i}" for i in range(2, k + 1))]


class BudgetExhausted(Exception):
    """The next query would take the attacker past its budget (``budget_counts: sent``)."""


@dataclass
class Ledger:
    """Queries spent: inputs and requests, by phase."""

    inputs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        (*FINGERPRINT_PHASES, "extraction", "verification"), 0))
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        (*FINGERPRINT_PHASES, "extraction"), 0))
    discarded: int = 0
    """Inputs sent whose answers were thrown away (verification) or never came (rejected by
    an admission defense): each is sent again while the budget lasts."""

    @property
    def total(self) -> int:
        """Every input sent so far."""
        return sum(self.inputs.values())

    def report(self, budget: int, budget_counts: BudgetCounts) -> QueriesReport:
        """attack.json's ``queries`` block: these counts and the budget."""
        inputs, requests = self.inputs, self.requests
        return QueriesReport(
            screening=inputs["screening"], mapping=inputs["mapping"],
            consistency=inputs["consistency"], extraction=inputs["extraction"],
            verification=inputs["verification"],
            fingerprint=sum(inputs[p] for p in FINGERPRINT_PHASES),
            discarded=self.discarded, total=self.total,
            requests=RequestCounts(
                screening=requests["screening"], mapping=requests["mapping"],
                consistency=requests["consistency"], extraction=requests["extraction"],
                fingerprint=sum(requests[p] for p in FINGERPRINT_PHASES),
                total=sum(requests.values())),
            budget=budget, budget_counts=budget_counts)


class Link(Protocol):
    """How the agent reaches a serving system (simulated or live)."""

    env: simpy.Environment
    zoo: Zoo
    """The zoo the harness knows (names, accuracies, Pareto front)."""

    def submit(self, accuracy: float, latency_ms: float, payload: Payload, model: int,
               on_done: Callable[[Request], None]) -> Request:
        """Send a request now; ``on_done(request)`` runs (in the SimPy world) once answered.
        ``model`` >= 0 names the model (the oracle's model API)."""
        ...

    def probe_answers(self, req: Request) -> np.ndarray:
        """The answers (k, classes) on the request's probes, as the attacker sees them."""
        ...

    def latency_ms(self, req: Request) -> float:
        """The latency the attacker saw for a completed request."""
        ...

    def offline_answers(self, model: int, probes: np.ndarray) -> np.ndarray:
        """The answers ``model`` gives on ``probes``, computed with the attacker's copy of the
        zoo (the known-zoo attacker)."""
        ...


class SimLink:
    """The simulated serving system: requests go to ``sim.system``; a probe's answer is the
    serving model's row of the responder's table, after any output defense."""

    def __init__(self, sim: Simulation, responder: Responder, identities: int = 1) -> None:
        self.sim = sim
        self.env: simpy.Environment = sim.env
        self.zoo = sim.zoo
        self.responder = responder
        self.tenants = [sim.add_tenant(name) for name in identity_names(identities)]
        """Its client identities, used in turn."""
        self._turn = itertools.cycle(self.tenants)
        for t in self.tenants:
            sim.system.hooks[t] = self._completed
        self._waiting: dict[int, Callable[[Request], None]] = {}

    def submit(self, accuracy: float, latency_ms: float, payload: Payload, model: int,
               on_done: Callable[[Request], None]) -> Request:
        size = max(len(payload.extract) + len(payload.probes), 1)
        req = Request(self.sim.stop.new_id(), next(self._turn), self.env.now, accuracy,
                      latency_ms, payload=payload, size=size, model=model)
        self._waiting[req.id] = on_done
        self.sim.system.submit(req)
        return req

    def probe_answers(self, req: Request) -> np.ndarray:
        payload: Payload = req.payload
        return self.sim.system.defense.postprocess(
            self.responder.answers(req.model, payload.probes), req.flagged)

    def latency_ms(self, req: Request) -> float:
        return req.latency_ms

    def offline_answers(self, model: int, probes: np.ndarray) -> np.ndarray:
        return self.sim.system.defense.postprocess(self.responder.answers(model, probes))

    def _completed(self, req: Request) -> None:
        cb = self._waiting.pop(req.id, None)
        if cb is not None:
            cb(req)


class AttackerAgent:
    """Sends the attacker's requests through a link and turns answers into observations."""

    def __init__(self, link: Link, cfg: AttackerConfig, responder: Responder) -> None:
        self.link = link
        self.env: simpy.Environment = link.env
        self.zoo = link.zoo
        self.cfg = cfg
        self.responder = responder
        self.ledger = Ledger()
        self.sent: list[Request] = []
        """Every request sent, in order (for the detection report)."""
        self.truth: list[tuple[int, Request]] = []
        """(the attacker's model, -1 for nobody known; the request): ``request.model`` is
        the model that really served, read at scoring time only."""
        self._gap = 1.0 / cfg.rate_rps
        self._next_send = cfg.start_s
        self.labels_only = cfg.outputs == "labels"

    # -- sending ---------------------------------------------------------------------------
    def pace(self) -> Generator[simpy.Event, Any, None]:
        """Wait for the next send slot allowed by ``rate_rps``."""
        delay = self._next_send - self.env.now
        if delay > 0:
            yield self.env.timeout(delay)
        self._next_send = max(self._next_send, self.env.now) + self._gap

    def allowance(self, phase: str) -> float:
        """Inputs that ``phase`` may still send under the budget (``inf``: not capped)."""
        cfg, spent = self.cfg, self.ledger.inputs
        if cfg.budget_counts == "sent":
            return cfg.budget - self.ledger.total
        if phase != "extraction":
            return float("inf")
        if cfg.budget_counts == "kept":
            return cfg.budget * cfg.max_sent_factor - spent["extraction"]
        return cfg.budget - spent["extraction"]

    def send(self, spec: SpecConfig | None, payload: Payload,
             on_done: Callable[[Request], None], model: int = -1) -> Request:
        """Submit a request now; ``on_done`` runs at its completion. ``model`` names the model
        explicitly (the single-model API of the oracle attack)."""
        n_extract, n_probe = len(payload.extract), len(payload.probes)
        riders_free = payload.phase == "extraction" and self.cfg.budget_counts != "sent"
        charged = n_extract + (0 if riders_free else n_probe)
        if charged > self.allowance(payload.phase):
            raise BudgetExhausted(f"{payload.phase}: {charged} inputs exceed the "
                                  f"{self.allowance(payload.phase):g} left")
        if payload.phase == "extraction":
            self.ledger.inputs["extraction"] += n_extract
            self.ledger.inputs["verification"] += n_probe
        else:
            self.ledger.inputs[payload.phase] += n_probe
        self.ledger.requests[payload.phase] += 1
        acc, lat = (100.0, 1e9) if spec is None else (spec.accuracy, spec.latency_ms)
        req = self.link.submit(acc, lat, payload, model, on_done)
        self.sent.append(req)
        return req

    def query(self, spec: SpecConfig | None, probes: np.ndarray, model: int = -1,
              phase: str = "mapping") -> Generator[simpy.Event, Any, Observation]:
        """Send the probes with ``spec`` (paced) and wait for the answer. A request
        an admission defense rejects (or overload shedding refuses) is sent again (its inputs
        count as sent and discarded).
        Raises :class:`BudgetExhausted` (before waiting) when the budget cannot pay for it, or
        when the server has refused it :data:`MAX_REJECTIONS` times in a row."""
        refused = 0
        while True:
            if len(probes) > self.allowance(phase):
                raise BudgetExhausted(f"{phase}: {len(probes)} inputs exceed the budget left")
            yield from self.pace()
            done = self.env.event()
            self.send(spec, Payload(probes=probes, phase=phase), _succeed(done), model)
            req: Request = yield done
            if not (req.rejected or req.shed):   # shed: refused under overload, unanswered
                break
            self.ledger.discarded += len(probes)
            refused += 1
            if refused >= MAX_REJECTIONS:
                raise BudgetExhausted(f"{phase}: the server refused the same query "
                                      f"{refused} times in a row")
        return self.observe(req)

    # -- observing -------------------------------------------------------------------------
    def observe(self, req: Request) -> Observation:
        """What the attacker sees of an answered request: its probe answers (as one-hot top-1
        labels when it only gets labels) and its latency."""
        answers = self.link.probe_answers(req)
        if self.labels_only and len(answers):
            answers = np.eye(answers.shape[1], dtype=np.float32)[answers.argmax(axis=1)]
        return Observation(answers, self.link.latency_ms(req), req)

    def signature(self, obs: Observation) -> bytes:
        """An exact signature of an observation: its answers rounded to 2 decimals, as bytes
        (equal answers, equal signatures). For simple strategies; it tolerates no output
        noise (:mod:`attacks.identify` does)."""
        return bytes(np.round(obs.probe_answers, 2).astype(np.float32).tobytes())

    def record(self, model: Any, req: Request) -> None:
        """An identification attempt: the attacker took ``req``'s answer for ``model`` (a
        cluster with an ``index``, or None: nobody known); scored against the truth."""
        self.truth.append((-1 if model is None else int(model.index), req))

    def truth_models(self) -> list[tuple[int, int]]:
        """The identification attempts with the model that served each (-1: unknown)."""
        return [(found, req.model) for found, req in self.truth]


def _succeed(event: simpy.Event) -> Callable[[Request], None]:
    """A completion callback that succeeds ``event`` with the answered request."""

    def succeed(req: Request) -> None:
        event.succeed(req)

    return succeed


class Extraction:
    """The extraction phase: send pool inputs with one spec, at the agent's rate, pipelined,
    while the budget allows (:meth:`AttackerAgent.allowance`); with a ``verify`` test
    (:class:`attacks.fingerprint.Verifier`), its probes ride along and answers from another
    model are discarded and their inputs re-queried (the budget counts them all). Each pool
    input is sent once unless ``beyond_pool`` asks for repeats or shifted copies; when the
    pool runs out first the extraction stops and says so (``pool_exhausted``)."""

    def __init__(self, agent: AttackerAgent, pool_size: int, rng: np.random.Generator) -> None:
        self.agent = agent
        self.pool_size = pool_size
        self.rng = rng
        self.beyond_pool = agent.cfg.beyond_pool
        self.kept: list[tuple[Request, np.ndarray]] = []
        """(request, rows of (pool index, dx, dy)) whose answers are kept for training: the
        harness gets the answers through the link (the simulation's are computed after the
        run, grouped by ``request.model``; a live server's came with the response)."""
        self.served: list[Request] = []
        """Every extraction request answered; ``request.model`` is ground truth, for scoring."""
        self.todo: deque[tuple[int, int, int]] = deque()
        """Discarded inputs, to be queried again first."""
        self.n_kept = 0
        """Inputs whose answers were kept."""
        self.pool_exhausted = False
        """Every pool input was sent and ``beyond_pool`` is ``stop``."""
        self._fresh = self._inputs()

    def _inputs(self) -> Iterator[tuple[int, int, int]]:
        """Pool indices in a seeded random order; after one pass, more passes only if
        ``beyond_pool`` asks (shifted copies of up to 2 px, or exact repeats)."""
        epoch = 0
        while epoch == 0 or self.beyond_pool != "stop":
            for i in self.rng.permutation(self.pool_size):
                if epoch and self.beyond_pool == "augment":
                    dx, dy = self.rng.integers(-2, 3, size=2)
                    yield (int(i), int(dx), int(dy))
                else:
                    yield (int(i), 0, 0)
            epoch += 1

    def _take(self, k: int) -> list[tuple[int, int, int]]:
        """Up to ``k`` inputs: discarded ones first, then fresh ones while the pool lasts."""
        rows = [self.todo.popleft() for _ in range(min(k, len(self.todo)))]
        rows += itertools.islice(self._fresh, k - len(rows))
        if len(rows) < k:
            self.pool_exhausted = True
        return rows

    def run(self, spec: SpecConfig | None, model: int = -1,
            verify: Verifier | None = None) -> Generator[simpy.Event, Any, None]:
        """Send in rounds: pipelined while the budget (and, in ``kept`` mode, the answers
        still missing) allows, then wait for what is in flight; another round re-queries what
        verification discarded, while the budget lasts."""
        agent = self.agent
        cfg = agent.cfg
        if not cfg.extract:
            return
        riders = verify.probes if verify is not None else np.zeros(0, np.int64)
        todo = self.todo
        kept_mode = cfg.budget_counts == "kept"
        outstanding = 0
        round_done = agent.env.event()

        def done(req: Request) -> None:
            nonlocal outstanding
            outstanding -= 1
            payload: Payload = req.payload
            keep = True
            if req.rejected or req.shed:  # turned away unanswered: queried again
                agent.ledger.discarded += len(payload.extract)
                todo.extend(map(tuple, payload.extract.tolist()))
                if outstanding == 0 and not round_done.triggered:
                    round_done.succeed()
                return
            self.served.append(req)
            if verify is not None and not verify.accept(agent.observe(req)):
                keep = False
                agent.ledger.discarded += len(payload.extract)
                todo.extend(map(tuple, payload.extract.tolist()))
            if keep:
                self.kept.append((req, payload.extract))
                self.n_kept += len(payload.extract)
            if outstanding == 0 and not round_done.triggered:
                round_done.succeed()

        def next_size() -> int:
            """Extraction inputs the next request may carry (0: stop sending)."""
            room = agent.allowance("extraction")
            if cfg.budget_counts == "sent":   # the riders are paid from the same budget
                room -= len(riders)
            if kept_mode:   # what is still missing, counting the answers on their way
                room = min(room, cfg.budget - self.n_kept - outstanding * cfg.inputs_per_request)
            return int(max(min(cfg.inputs_per_request, room), 0))

        def more() -> bool:
            return next_size() > 0 and bool(todo or not self.pool_exhausted)

        while more():
            while more():
                yield from agent.pace()
                rows = self._take(next_size())
                if not rows:
                    break
                outstanding += 1
                agent.send(spec, Payload(np.asarray(rows, dtype=np.int64), riders,
                                         "extraction"), done, model)
            while outstanding:   # every answer in (one may have ended the round early)
                if round_done.triggered:
                    round_done = agent.env.event()
                yield round_done
            round_done = agent.env.event()
