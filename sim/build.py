"""Assembling a serving system from a scenario: the one place the simulator and the live
server build theirs (docs/plugins.md).

Every plugin is built through its registry as ``cls(params, ctx)``, with its own named random
stream from the scenario's one seed: ``policy``, ``defense``, ``service``, and per tenant
``arrivals/<tenant>`` and ``slo/<tenant>`` (:func:`tenant_plugins`). Everything that can fail on
user input (profile, memory fit) fails here, before any clock starts, as a ConfigError naming
the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from defense import build_defenses
from sim.errors import ConfigError
from sim.plugins import Context
from sim.policies import POLICIES
from sim.profiles import ZooProfile, load_profile
from sim.rng import SeedTree
from sim.service_time import SERVICE_TIMES
from sim.system import ServingSystem
from sim.worker import Executor
from sim.zoo import Zoo
from workloads.arrivals import ARRIVALS, ArrivalProcess
from workloads.slo import DISTRIBUTIONS, Distribution

if TYPE_CHECKING:
    import simpy

    from sim.config import FrontendConfig, Scenario, ShedConfig, TenantConfig
    from sim.frontend import Frontend


def zoo_tables(scenario: Scenario, profile: ZooProfile) -> Zoo:
    """The engine's tables for the scenario's zoo (batch sizes, time scale, latency model)."""
    z = scenario.zoo
    return Zoo(profile, scenario.cluster.max_batch, z.time_scale, z.latency_model, z.dispatch_ms)


def build_system(scenario: Scenario, clock: simpy.Environment,
                 executor: Executor | None = None, *, base_dir: Path | None = None,
                 profile: ZooProfile | None = None, keep_requests: bool = True,
                 shedding: ShedConfig | None = None) -> ServingSystem:
    """The scenario's serving system on ``clock`` (a SimPy environment: simulated time, or
    the wall clock of the live server, whose ``executor`` runs batches for real);
    ``shedding`` replaces ``cluster.shedding`` (the live server adds ``api.max_pending``)."""
    zoo = zoo_tables(scenario, profile or load_profile(scenario.zoo.profile, base_dir))
    ctx = Context(zoo=zoo, clock=clock, seeds=SeedTree(scenario.seed))
    c = scenario.cluster
    policy = POLICIES.build(scenario.policy, ctx.with_stream("policy"))
    defense = build_defenses(scenario.defense, ctx.with_stream("defense"))
    service = SERVICE_TIMES.build(scenario.service_time, ctx.with_stream("service"))
    try:
        system = ServingSystem(
            clock, zoo, workers=c.workers, memory_mb=c.memory_mb, max_batch=c.max_batch,
            batch_timeout_ms=c.batch_timeout_ms, policy=policy, defense=defense,
            service=service, preload=c.preload, replicate=c.replicate, executor=executor,
            keep_requests=keep_requests, shedding=shedding or c.shedding)
    except ValueError as e:  # the cluster's memory cannot hold a model
        raise ConfigError(f"cluster: {e}") from None
    if scenario.frontend is not None and executor is None:  # live, the front-end is real
        add_frontend(system, scenario.frontend, base_dir, SeedTree(scenario.seed))
    return system


def frontend_profile_file(config: FrontendConfig, base_dir: Path | None) -> Path:
    """The front-end profile's file (``frontend.profile``, relative to ``base_dir``)."""
    path = Path(config.profile)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path.resolve()


def add_frontend(system: ServingSystem, config: FrontendConfig, base_dir: Path | None,
                 seeds: SeedTree) -> Frontend:
    """The modeled HTTP front-end (:mod:`sim.frontend`) in front of ``system``, with the
    costs of its profile (a path relative to ``base_dir``); a ConfigError naming the field
    when the profile is missing, invalid or lacks what the block asks for."""
    from sim.frontend import Frontend
    from sim.frontend_profile import load_frontend_profile

    path = frontend_profile_file(config, base_dir)
    profile = load_frontend_profile(path)
    if config.client is not None and profile.client is None:
        raise ConfigError(f"frontend.client: the front-end profile {path} has no client costs "
                          "(measure them with zoosim frontend profile)")
    if config.max_connections is not None:
        system.sheds = True  # requests refused at the cap are marked shed
    try:
        return Frontend(system.env, system, config, profile, seeds)
    except ValueError as e:  # e.g. a core queue of fewer than one core
        raise ConfigError(f"frontend: {e}") from None


def tenant_plugins(tenant: TenantConfig, seeds: SeedTree
                   ) -> tuple[ArrivalProcess, Distribution, Distribution]:
    """A tenant's arrival process (stream ``arrivals/<name>``) and its accuracy and latency
    distributions (sharing stream ``slo/<name>``, drawn in turn)."""
    ctx = Context(seeds=seeds)
    slo = ctx.with_stream("slo", tenant.name)
    return (ARRIVALS.build(tenant.arrivals, ctx.with_stream("arrivals", tenant.name)),
            DISTRIBUTIONS.build(tenant.slo.accuracy, slo),
            DISTRIBUTIONS.build(tenant.slo.latency_ms, slo))
