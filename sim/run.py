"""Build a simulation from a validated scenario and run it (docs/architecture.md, "Data flow").

The serving system comes from :func:`sim.build.build_system`, as the live server's does.
Everything that can fail on user input (profile, traces, memory fit) is built before the
clock starts, so a bad scenario never half-runs. Random streams are named per component
(``arrivals/<tenant>``, ``slo/<tenant>``, ``service``, ``defense``) from the one seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import simpy

from sim.build import build_system, tenant_plugins
from sim.config import Scenario
from sim.env import Environment
from sim.plugins import Context
from sim.profiles import PROFILE_DIR, resolve_profile_path
from sim.recorder import Recorder
from sim.rng import SeedTree
from sim.sinks import MemorySink, Sink
from sim.source import ArrivalSource, StopRule
from workloads.arrivals import ArrivalProcess
from workloads.slo import Distribution

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from defense.stack import DefenseStack
    from sim.tally import SummaryTally


@dataclass
class SimResult:
    """What a run produced: the records, the summary and the load/evict events."""

    records: pd.DataFrame | None
    """Every record, in id order; None when they went to a file or a sample
    (:meth:`Simulation.run`'s ``sink``)."""
    summary: dict[str, Any]
    """summary.json's content: :class:`sim.summary.Summary`, dumped."""
    events: list[tuple[float, str, int, int]]
    recorded: int = 0
    """Records the run produced (all of them, whatever the sink kept)."""

    @property
    def frame(self) -> pd.DataFrame:
        """The records, kept in memory (the default sink); ValueError if they were not."""
        if self.records is None:
            raise ValueError("the records were streamed to a sink, not kept in memory")
        return self.records


@dataclass
class Progress:
    """What a run's progress bar counts, and where it draws (``Simulation.run``). The bar is
    updated between slices of simulated time, so it costs nothing per event."""

    count: Callable[[], int] | None = None
    """The count shown; None: the requests arrived so far."""
    total: int | None = None
    """The count's end, if known (None: the scenario's ``requests``)."""
    unit: str = "req"
    desc: str = "simulate"
    phase: Callable[[], str] | None = None
    """Shown after the bar (e.g. the attack's phase)."""
    file: IO[str] | None = None
    """Where the bar draws (None: stderr)."""
    delay: float = 1.0
    """Seconds before the bar appears: none on short runs."""
    leave: bool = False
    """Keep the final bar on screen."""


class Simulation:
    """One scenario, built and ready to run."""

    def __init__(self, scenario: Scenario, base_dir: Path | None = None,
                 keep_requests: bool = False) -> None:
        """``keep_requests``: also keep every request object in ``system.requests`` (for
        tests and tools that inspect them; memory then grows with the run)."""
        self.scenario = scenario
        self.base_dir = base_dir
        self.seeds = SeedTree(scenario.seed)
        self.env = Environment()
        self.profile_ref = _portable_profile_ref(scenario.zoo.profile, base_dir)
        """The profile as a shipped name, or an absolute path (for config.resolved.yaml)."""
        self.system = build_system(scenario, self.env, base_dir=base_dir,
                                   keep_requests=keep_requests)
        self.zoo = self.system.zoo
        self.stop = StopRule(scenario.requests, scenario.duration_s)
        fe = self.system.frontend
        self.source = ArrivalSource(self.env, self.system.submit if fe is None else fe.arrive,
                                    self.stop)
        """Every tenant's arrivals, merged into one event chain (:mod:`sim.source`)."""
        self.tenant_names: list[str] = []
        for t in scenario.tenants:
            self.add_tenant_source(t.name, *tenant_plugins(t, self.seeds))

    def add_tenant(self, name: str) -> int:
        """Register a tenant name; returns its index in the records."""
        self.tenant_names.append(name)
        return len(self.tenant_names) - 1

    def add_tenant_source(self, name: str, arrivals: ArrivalProcess, accuracy: Distribution,
                          latency: Distribution) -> None:
        """A tenant whose requests come from an arrival process and SLO distributions."""
        idx = self.add_tenant(name)
        self.source.add(idx, arrivals, accuracy, latency)

    def run(self, progress: bool | Progress = False, sink: Sink | None = None,
            tallies: Sequence[SummaryTally] = ()) -> SimResult:
        """Run to completion (arrivals stop, queues drain) and derive the summary; with a
        progress bar if ``progress`` (True: requests arrived).

        The records stream through a :class:`~sim.recorder.Recorder` as requests finish:
        into ``sink`` (None: kept in memory and returned as ``records``) and into the
        summary's tally, plus any extra ``tallies`` (e.g. an attack's benign-only summary)."""
        s = self.system
        memory = MemorySink() if sink is None else None
        out: Sink = memory if memory is not None else sink  # type: ignore[assignment]
        tally = self.tally()
        recorder = Recorder(self.tenant_names, self.zoo.names, self.zoo.accuracy,
                            admission=s.defense.admits, shedding=s.sheds, sink=out,
                            tallies=[tally, *tallies], frontend=s.frontend is not None,
                            transforms=[self._answer_check()] if s.defense.changes_outputs
                            else [])
        s.recorder = recorder
        start = time.perf_counter()
        try:
            self._advance(progress)
            wall = time.perf_counter() - start
            recorder.close()
        except BaseException:
            out.abort()
            raise
        kinds = [e[1] for e in s.events]
        summary = tally.summary(
            seed=self.scenario.seed, wall_time_s=wall, sim_events=_scheduled_events(self.env),
            area=s.area, loads=kinds.count("load"), evictions=kinds.count("evict")).to_json()
        records = memory.frame() if memory is not None else None
        return SimResult(records, summary, list(s.events), recorder.rows)

    def tally(self, only: Sequence[int] | None = None) -> SummaryTally:
        """A summary tally of this run's records (of tenants ``only``, if given)."""
        from sim.tally import SummaryTally

        s = self.system
        return SummaryTally(tenants=self.tenant_names, models=self.zoo.names,
                            n_workers=len(s.workers), warmup_s=self.scenario.warmup_s,
                            admission=s.defense.admits, shedding=s.sheds, only=only)

    def _answer_check(self) -> Callable[[pd.DataFrame], None]:
        """The records' ``answer_ok`` column, chunk by chunk: whether each request's answer
        kept its top-1 under the output defense (nullable: unknown on a zoo without
        weights); see :mod:`defense.answers`."""
        import pandas as pd

        from defense import build_defenses
        from defense.answers import AnswerCheck

        sc = self.scenario
        names = self.tenant_names
        ctx = Context(zoo=self.zoo, clock=self.env, seeds=self.seeds)

        def defense(tenant: int) -> DefenseStack:
            return build_defenses(sc.defense, ctx.with_stream("defense", "answers",
                                                              names[tenant]))

        def inputs(tenant: int) -> np.random.Generator:
            return self.seeds.generator("answers", names[tenant])

        check = AnswerCheck(sc.zoo.profile, self.base_dir, defense, inputs)

        def add_column(df: pd.DataFrame) -> None:
            flagged = df["flagged"].to_numpy(dtype=bool) if "flagged" in df else None
            ok = check.intact(df["model"].cat.codes.to_numpy(),
                              df["tenant"].cat.codes.to_numpy(), flagged)
            df["answer_ok"] = pd.Series(pd.NA if ok is None else ok, index=df.index,
                                        dtype="boolean")

        return add_column

    def _advance(self, progress: bool | Progress) -> None:
        """Run the event loop in slices of simulated time, updating a progress bar between
        slices (no per-event cost). The bar appears only on runs longer than its delay."""
        env = self.env
        if not progress:
            env.run()
            return
        from tqdm import tqdm

        p = progress if isinstance(progress, Progress) else Progress()
        system = self.system
        count = p.count or (lambda: system.arrived)
        total = p.total if p.total is not None or p.count else self.scenario.requests
        with tqdm(total=total, unit=p.unit, delay=p.delay, desc=p.desc, leave=p.leave,
                  file=p.file) as bar:
            step, done = 1.0, 0
            while env.peek() < math.inf:
                t0 = time.perf_counter()
                env.run(until=env.now + step)
                elapsed = time.perf_counter() - t0
                step *= min(4.0, max(0.25, 0.2 / max(elapsed, 1e-3)))
                now = count()
                if p.phase is not None:
                    bar.set_postfix_str(p.phase(), refresh=False)
                bar.update(now - done)
                done = now


def _portable_profile_ref(ref: str, base_dir: Path | None) -> str:
    path = resolve_profile_path(ref, base_dir)
    return path.stem if path.parent == PROFILE_DIR else str(path)


def _scheduled_events(env: simpy.Environment) -> int | None:
    """SimPy's own count of scheduled events (its private event-id counter), if available."""
    counter = getattr(env, "_eid", None)
    return next(counter) if counter is not None else None


def simulate(scenario: Scenario, base_dir: Path | None = None,
             progress: bool | Progress = False, sink: Sink | None = None) -> SimResult:
    """Build and run a scenario (``sink``: where the records go; None: kept in memory)."""
    return Simulation(scenario, base_dir).run(progress, sink)
