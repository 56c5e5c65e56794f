"""Run an attack scenario end to end (PSML §4; docs/architecture.md, "Data flow").

1. Build the serving simulation with its benign tenants and the attacker as one more tenant.
2. Before the clock starts, compute every zoo model's answers on the attacker's pool for real
   (one batched forward pass per model): what a probe query returns during the simulation.
3. Run: the strategy fingerprints (if it does) and sends its extraction queries; benign
   arrivals stop when the attacker is done, then queues drain.
4. Compute the answers to the kept extraction inputs for real, grouped by the model that the
   simulation chose; train the surrogate; measure its accuracy and its fidelity to the target
   on the test split.
With ``attacker.extract: false`` only the fingerprinting runs (query-cost studies); on a zoo
without weights (the published CIFAR figures) its answers then come from a SyntheticResponder.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from attacks.agent import AttackerAgent, Extraction, Ledger, SimLink, identity_names
from attacks.config import AttackerConfig, AttackScenario, TargetRank
from attacks.fingerprint import identification_accuracy
from attacks.inputs import shifted as _shifted
from attacks.report import (
    AttackReport,
    DetectionReport,
    ExtractionReport,
    FingerprintReport,
    SurrogateReport,
    VictimReport,
)
from attacks.responders import Responder, SyntheticResponder, TableResponder
from attacks.strategies import STRATEGIES, Plan
from defense import Admission
from defense.chain import in_role
from sim.errors import ConfigError, UserError
from sim.plugins import Context
from sim.request import Request
from sim.rng import SeedTree
from sim.run import Progress, SimResult, Simulation
from sim.sinks import Sink
from sim.zoo import Zoo

if TYPE_CHECKING:
    from attacks.victim import VictimZoo
    from zoo_profiles.datasets import Split

@dataclass
class Victim:
    """What the attacker queries: the zoo's weights (or none), its pool, the test split."""

    responder: Responder
    candidates: np.ndarray
    pool_size: int
    zoo: VictimZoo | None = None
    pool: Split | None = None
    test: Split | None = None


@dataclass
class AttackResult:
    """attack.json's content, and the simulation behind it."""

    attack: AttackReport
    sim: SimResult

    @cached_property
    def report(self) -> dict[str, Any]:
        """attack.json's content, as written (:meth:`AttackReport.to_json`)."""
        return self.attack.to_json()


def resolve_target(target: str, zoo: Zoo) -> tuple[int, float]:
    """The target's model number and its rank on the Pareto front (0 = least accurate)."""
    front = zoo.front
    if target in TargetRank:
        pos = {"least-accurate": 0, "median": len(front) // 2,
               "most-accurate": len(front) - 1}[target]
        return front[pos], pos / max(len(front) - 1, 1)
    if target not in zoo.index:
        raise ConfigError(f"attacker.target: unknown model {target!r}; the zoo has "
                          f"{zoo.names} (or use one of {list(TargetRank)})")
    m = zoo.index[target]
    if m not in front:
        raise ConfigError(f"attacker.target: {target!r} is not on the zoo's accuracy/latency "
                          "Pareto front, so no spec selects it reliably")
    return m, front.index(m) / max(len(front) - 1, 1)


def prepare_victim(scenario: AttackScenario, n_models: int, base_dir: Path | None,
                   rng: np.random.Generator, live: bool = False) -> Victim:
    """Load the victim zoo and the attacker's pool; precompute the probe candidates' answers
    (one batched forward pass per model). ``live``: the pool is needed whatever ``extract``
    says (real inputs are sent), so a zoo without weights is an error."""
    from attacks.victim import VictimZoo
    from zoo_profiles.datasets import load_pool

    cfg = scenario.attacker
    try:
        zoo = VictimZoo(scenario.zoo.profile, base_dir)
    except UserError:
        if cfg.extract or live:
            raise
        n = cfg.fingerprint.candidates
        cands = np.arange(n)
        return Victim(SyntheticResponder(n_models, n, 10, rng), cands, n)
    dataset = zoo.dataset()
    split_seed = dataset.split_seed
    pool = dataset.attacker if cfg.pool == f"{dataset.name}-attacker" else \
        load_pool(cfg.pool, split_seed=split_seed)
    if tuple(pool.x.shape[1:]) != tuple(zoo.in_shape):
        raise ConfigError(f"attacker.pool: {cfg.pool!r} holds inputs of shape "
                          f"{tuple(pool.x.shape[1:])} but zoo {zoo.profile.name!r} takes "
                          f"{tuple(zoo.in_shape)} (use {dataset.name}-attacker)")
    cands = np.sort(rng.choice(len(pool), size=min(cfg.fingerprint.candidates, len(pool)),
                               replace=False))
    table = np.stack([zoo.probabilities(m, pool.x[cands]) for m in range(len(zoo))])
    return Victim(TableResponder(table, cands, len(pool)), cands, len(pool), zoo, pool,
                  dataset.test)


def attack_progress(ledger: Ledger, cfg: AttackerConfig,
                    progress: bool | Progress) -> Progress | None:
    """The attack's progress bar: inputs sent, against the budget where it caps them all
    (``budget_counts: sent``), and the phase; None without one. A given :class:`Progress`
    keeps where and how it draws."""
    if not progress:
        return None
    phases = list(ledger.requests)   # screening, mapping, consistency, extraction: in order

    def phase() -> str:
        return next((p for p in reversed(phases) if ledger.requests[p]), "")

    base = progress if isinstance(progress, Progress) else Progress(leave=True)
    return replace(base, count=lambda: ledger.total, unit="input", desc="attack", phase=phase,
                   total=cfg.budget if cfg.budget_counts == "sent" else None)


P = ParamSpec("P")
R = TypeVar("R")


def on_one_torch_thread(run: Callable[P, R]) -> Callable[P, R]:
    """Run an attack with torch on one thread, restored after. The same seed must give the
    same records wherever it runs: on 2 threads the victim's batched forward passes and the
    surrogate's training sum in another order, and a regime surrogate's fidelity moved by
    0.2-0.8 points between a sweep on 1 worker (all cores to torch) and on 2. Parallelism
    comes from sweep workers instead."""
    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


@on_one_torch_thread
def run_attack(scenario: AttackScenario, base_dir: Path | None = None,
               progress: bool | Progress = False, sink: Sink | None = None) -> AttackResult:
    """Simulate the attack, train the surrogate, score it; ``progress``: a bar of the inputs
    sent while the simulation runs (:func:`attack_progress`); ``sink``: where the records go
    (None: kept in memory, :meth:`Simulation.run <sim.run.Simulation.run>`)."""
    cfg = scenario.attacker
    sim = Simulation(scenario, base_dir)
    target, rank = resolve_target(cfg.target, sim.zoo)
    rng = sim.seeds.generator("attacker")
    victim = prepare_victim(scenario, len(sim.zoo), base_dir, rng)
    agent = AttackerAgent(SimLink(sim, victim.responder, cfg.identities), cfg,
                          victim.responder)
    ext = Extraction(agent, victim.pool_size, sim.seeds.generator("attacker", "inputs"))
    plan = Plan(target, rank)
    strategy = STRATEGIES.build(cfg.strategy, Context(
        zoo=sim.zoo, clock=sim.env, seeds=sim.seeds, stream=("attacker",), generator=rng))

    def attacker() -> Any:
        yield from strategy.run(agent, ext, plan, victim.candidates)
        sim.stop.halt()

    sim.env.process(attacker())
    attacker_names = set(identity_names(cfg.identities))
    benign = sim.tally(only=[t for t, name in enumerate(sim.tenant_names)
                             if name not in attacker_names])
    result = sim.run(attack_progress(agent.ledger, cfg, progress) or False, sink, [benign])
    defense = sim.system.defense

    def answers(kept: list[tuple[Request, np.ndarray]], x: np.ndarray) -> np.ndarray:
        """The real answers, one batched forward pass per serving model, after the run."""
        assert victim.zoo is not None
        models = np.concatenate([np.full(len(r), req.model) for req, r in kept])
        flagged = np.concatenate([np.full(len(r), req.flagged) for req, r in kept])
        out = victim.zoo.outputs_grouped(models, x)
        return defense.postprocess_rows(out, flagged)

    report = attack_report(scenario, sim.zoo, plan, agent, ext, victim, answers)
    report.benign = benign.summary(   # no Little's-law check: the engine's occupancy
        seed=scenario.seed, wall_time_s=result.summary["wall_time_s"],  # counts the attacker
        sim_events=None, area=None, loads=result.summary["model_loads"],
        evictions=result.summary["evictions"])
    return AttackResult(report, result)


Answers = Callable[[list[tuple[Request, np.ndarray]], np.ndarray], np.ndarray]
"""(kept extraction requests with their rows, the rows' inputs) -> the answers, row by row."""


def attack_report(scenario: AttackScenario, zoo: Zoo, plan: Plan, agent: AttackerAgent,
                  ext: Extraction, victim: Victim, answers: Answers) -> AttackReport:
    """attack.json's common content (the caller sets ``benign`` or ``live``). Ground truth
    comes from ``request.model`` of the requests the agent kept; where one is unknown (-1: a
    live server without records), the scores that need it are None."""
    cfg = scenario.attacker
    target = plan.target
    fp = plan.fingerprint
    truth = agent.truth_models()
    truth_known = all(m >= 0 for _, m in truth)
    served = np.asarray([r.model for r in ext.served])
    consistency = (float((served == target).mean())
                   if len(served) and (served >= 0).all() else None)
    fingerprints = STRATEGIES.get(cfg.strategy.type).fingerprints
    queries = agent.ledger.report(cfg.budget, cfg.budget_counts)
    mapped: dict[str, Any] = {}
    if fingerprints:   # what a mapping strategy reports beside the common keys
        mapped = {"cost_per_model": None, "identified_on": None, "noise": None,
                  "latency_decided": None, "selection_varies": None, "sampled_requests": None,
                  "latency_split": None,
                  "warning": plan.extra.get("warning")}
    if fingerprints and fp:
        mapped |= {"cost_per_model": round(queries.fingerprint / len(fp.models), 1),
                   "identified_on": fp.outputs, "noise": round(fp.identifier.noise()[0], 4),
                   "latency_decided": fp.identifier.latency_decided,
                   "selection_varies": fp.varies, "sampled_requests": fp.sampled,
                   "latency_split": fp.split,
                   "warning": fp.warning or mapped["warning"]}
    fingerprint = FingerprintReport(
        complete=plan.fingerprint_complete if fingerprints else None,
        models_found=len(fp.models) if fp else None,
        identification_accuracy=(identification_accuracy(truth)
                                 if fp and truth_known else None),
        trigger_consistency=consistency,
        estimated_consistency=fp.consistency if fp else None,
        trigger_spec=fp.trigger.model_dump() if fp else None,
        thresholds=[round(s.lo, 3) for s in fp.segments[1:]] if fp else None,
        zoo_models=len(zoo),
        front_models=len(zoo.front),
        **mapped,
    )
    extraction, surrogate = extract_and_score(
        cfg, zoo, ext, victim, target, answers,
        SeedTree(scenario.seed).integer_seed("attacker", "surrogate"))
    return AttackReport(
        strategy=cfg.strategy.type,
        target_model=zoo.names[target],
        queries=queries,
        fingerprint=fingerprint,
        extraction=extraction,
        surrogate=surrogate,
        victim=VictimReport(accuracy=float(zoo.accuracy[target])),
        outputs=cfg.outputs,
        verify=cfg.verify,
        seed=scenario.seed,
        **({"detection": detection_report(agent.sent, cfg.identities)}
           if in_role(scenario.defense, Admission) and isinstance(agent.link, SimLink)
           else {}),
    )


def detection_report(sent: list[Request], identities: int) -> DetectionReport:
    """attack.json's ``detection`` (simulated attacks: a live server's flags stay on the
    server): which of the attacker's identities admission flagged, and after how many of its
    requests and inputs the first flag fell (the detection delay)."""
    caught = [r.flagged or r.rejected for r in sent]
    first = caught.index(True) if any(caught) else None
    return DetectionReport(
        identities=identities,
        flagged_identities=len({r.tenant for r, c in zip(sent, caught, strict=True) if c}),
        first_flag_request=None if first is None else first + 1,
        first_flag_inputs=None if first is None else sum(
            len(r.payload.extract) + len(r.payload.probes) for r in sent[:first + 1]),
        flagged_requests=round(sum(caught) / len(sent), 4) if sent else 0.0)


def extract_and_score(cfg: AttackerConfig, zoo: Zoo, ext: Extraction, victim: Victim,
                      target: int, answers: Answers,
                      seed: int) -> tuple[ExtractionReport, SurrogateReport]:
    """The answers to the kept inputs (from ``answers``), the surrogate trained on them, and
    its accuracy and fidelity on the test split. An attack that kept no answers (its budget
    ran out while fingerprinting) is scored with its untrained surrogate: what it holds.
    Without extraction (``extract: false``) or weights there is nothing to score (NaN)."""
    from attacks.extraction import evaluate_surrogate, init_surrogate, train_surrogate

    if not cfg.extract or victim.zoo is None or victim.pool is None or victim.test is None:
        nan = float("nan")
        return (ExtractionReport(kept_inputs=0, served_by={},
                                 pool_exhausted=ext.pool_exhausted),
                SurrogateReport(arch=cfg.surrogate.arch, steps=0, accuracy=nan, fidelity=nan))
    target_test = victim.zoo.predictions(target, victim.test.x)
    if not ext.kept:
        untrained = init_surrogate(cfg.surrogate.arch, victim.zoo.in_shape,
                                   victim.zoo.num_classes, seed).eval()
        return (ExtractionReport(kept_inputs=0, distinct_inputs=0, served_by={},
                                 pool_exhausted=ext.pool_exhausted),
                SurrogateReport(arch=cfg.surrogate.arch, steps=0,
                                **evaluate_surrogate(untrained, victim.test, target_test)))
    started = time.perf_counter()
    rows = np.concatenate([r for _, r in ext.kept])
    x = _shifted(victim.pool.x, rows)
    y = answers(ext.kept, x)
    s = cfg.surrogate
    steps = s.train_steps(len(x))
    surrogate = train_surrogate(
        x, y if cfg.outputs == "probabilities" else y.argmax(axis=1),
        kind=cfg.outputs, arch=s.arch, steps=steps, batch_size=s.batch_size, lr=s.lr,
        augment=s.augment, num_classes=victim.zoo.num_classes, seed=seed)
    scores = evaluate_surrogate(surrogate, victim.test, target_test)
    models = np.concatenate([np.full(len(r), req.model) for req, r in ext.kept])
    served_by: dict[str, int] | None = None
    from_target: float | None = None
    if (models >= 0).all():
        served = dict(zip(*np.unique(models, return_counts=True), strict=True))
        served_by = {zoo.names[int(m)]: int(c) for m, c in served.items()}
        from_target = round(float((models == target).mean()), 4)
    return (ExtractionReport(kept_inputs=len(x), distinct_inputs=_distinct(rows),
                             served_by=served_by, from_target=from_target,
                             pool_exhausted=ext.pool_exhausted,
                             training_s=round(time.perf_counter() - started, 3)),
            SurrogateReport(arch=s.arch, steps=steps, **scores))


def _distinct(rows: np.ndarray) -> int:
    """Distinct inputs among the kept rows of (pool index, dx, dy)."""
    return len(np.unique(rows, axis=0))
