"""Build a simulation from a validated scenario and run it (ARCHITECTURE.md, "Data flow").

Everything that can fail on user input (profile, traces, memory fit) is built before the
clock starts, so a bad scenario never half-runs. Random streams are named per component
(``arrivals/<tenant>``, ``slo/<tenant>``, ``service``, ``defense``) from the one seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simpy

from defense import DEFENSES
from sim.config import Scenario
from sim.errors import ConfigError
from sim.policies import POLICIES
from sim.profiles import PROFILE_DIR, load_profile, resolve_profile_path
from sim.records import records_frame
from sim.rng import SeedTree
from sim.service_time import SERVICE_TIMES
from sim.source import StopRule, tenant_source
from sim.system import ServingSystem
from sim.zoo import Zoo
from workloads.arrivals import ARRIVALS
from workloads.slo import DISTRIBUTIONS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from defense.base import Defense


@dataclass
class SimResult:
    """What a run produced: the records, the summary and the load/evict events."""

    records: pd.DataFrame
    summary: dict[str, Any]
    events: list[tuple[float, str, int, int]]


class Simulation:
    """One scenario, built and ready to run."""

    def __init__(self, scenario: Scenario, base_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.base_dir = base_dir
        self.seeds = SeedTree(scenario.seed)
        self.env = simpy.Environment()
        c = scenario.cluster
        profile = load_profile(scenario.zoo.profile, base_dir)
        self.profile_ref = _portable_profile_ref(scenario.zoo.profile, base_dir)
        """The profile as a shipped name, or an absolute path (for config.resolved.yaml)."""
        self.zoo = Zoo(profile, c.max_batch, scenario.zoo.time_scale,
                       scenario.zoo.latency_model, scenario.zoo.dispatch_ms)
        policy = POLICIES[scenario.policy.type](scenario.policy, self.zoo)
        defense = DEFENSES[scenario.defense.type](scenario.defense,
                                                   self.seeds.generator("defense"), self.zoo)
        service = SERVICE_TIMES[scenario.service_time.type](scenario.service_time,
                                                             self.seeds.generator("service"))
        try:
            self.system = ServingSystem(
                self.env, self.zoo, workers=c.workers, memory_mb=c.memory_mb,
                max_batch=c.max_batch, batch_timeout_ms=c.batch_timeout_ms, policy=policy,
                defense=defense, service=service, preload=c.preload, replicate=c.replicate)
        except ValueError as e:
            raise ConfigError(f"cluster: {e}") from None
        self.stop = StopRule(scenario.requests, scenario.duration_s)
        self.tenant_names: list[str] = []
        for t in scenario.tenants:
            self.add_tenant_source(t.name, ARRIVALS[t.arrivals.type](t.arrivals),
                                   DISTRIBUTIONS[t.slo.accuracy.type](t.slo.accuracy),
                                   DISTRIBUTIONS[t.slo.latency_ms.type](t.slo.latency_ms))

    def add_tenant(self, name: str) -> int:
        """Register a tenant name; returns its index in the records."""
        self.tenant_names.append(name)
        return len(self.tenant_names) - 1

    def add_tenant_source(self, name: str, arrivals: Any, accuracy: Any, latency: Any) -> None:
        """A tenant whose requests come from an arrival process and SLO distributions."""
        idx = self.add_tenant(name)
        self.env.process(tenant_source(
            self.env, self.system, idx, arrivals, accuracy, latency,
            self.seeds.generator("arrivals", name), self.seeds.generator("slo", name),
            self.stop))

    def run(self, progress: bool = False) -> SimResult:
        """Run to completion (arrivals stop, queues drain) and derive the summary."""
        from sim.summary import summarize

        start = time.perf_counter()
        self._advance(progress)
        wall = time.perf_counter() - start
        s = self.system
        df = records_frame(s.requests, self.tenant_names, self.zoo.names, self.zoo.accuracy)
        if s.defense.changes_outputs:
            df["answer_ok"] = self._answers_intact(df)
        kinds = [e[1] for e in s.events]
        summary = summarize(
            df, warmup_s=self.scenario.warmup_s, n_workers=len(s.workers),
            seed=self.scenario.seed, wall_time_s=wall, sim_events=_scheduled_events(self.env),
            area=s.area, loads=kinds.count("load"), evictions=kinds.count("evict"))
        return SimResult(df, summary, list(s.events))

    def _answers_intact(self, df: pd.DataFrame) -> pd.Series:
        """Whether each request's answer kept its top-1 under the output defense (nullable:
        unknown on a zoo without weights); see :mod:`defense.answers`."""
        import pandas as pd

        from defense.answers import answers_intact

        sc = self.scenario
        names = self.tenant_names

        def defense(tenant: int) -> Defense:
            copy: Defense = DEFENSES[sc.defense.type](
                sc.defense, self.seeds.generator("defense", "answers", names[tenant]), self.zoo)
            return copy

        def inputs(tenant: int) -> np.random.Generator:
            return self.seeds.generator("answers", names[tenant])

        ok = answers_intact(df["model"].cat.codes.to_numpy(), df["tenant"].cat.codes.to_numpy(),
                            sc.zoo.profile, self.base_dir, defense, inputs)
        if ok is None:
            return pd.Series(pd.NA, index=df.index, dtype="boolean")
        return pd.Series(ok, index=df.index, dtype="boolean")

    def _advance(self, progress: bool) -> None:
        """Run the event loop in slices of simulated time, updating a progress bar between
        slices (no per-event cost). The bar appears only on runs longer than a second."""
        env = self.env
        if not progress:
            env.run()
            return
        from tqdm import tqdm

        total = self.scenario.requests
        with tqdm(total=total, unit="req", delay=1.0, desc="simulate", leave=False) as bar:
            step, done = 1.0, 0
            while env.peek() < math.inf:
                t0 = time.perf_counter()
                env.run(until=env.now + step)
                elapsed = time.perf_counter() - t0
                step *= min(4.0, max(0.25, 0.2 / max(elapsed, 1e-3)))
                bar.update(self.system.arrived - done)
                done = self.system.arrived


def _portable_profile_ref(ref: str, base_dir: Path | None) -> str:
    path = resolve_profile_path(ref, base_dir)
    return path.stem if path.parent == PROFILE_DIR else str(path)


def _scheduled_events(env: simpy.Environment) -> int | None:
    """SimPy's own count of scheduled events (its private event-id counter), if available."""
    counter = getattr(env, "_eid", None)
    return next(counter) if counter is not None else None


def simulate(scenario: Scenario, base_dir: Path | None = None,
             progress: bool = False) -> SimResult:
    """Build and run a scenario."""
    return Simulation(scenario, base_dir).run(progress)
