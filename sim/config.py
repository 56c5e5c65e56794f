"""The scenario schema (docs/configuration.md), validated as a whole before a run.

Plugin blocks (``policy``, ``defense``, ``service_time``, ``arrivals``, SLO distributions) are
validated against their registries (:mod:`sim.plugins`) when a scenario is read, so plugins
registered by other packages are accepted, and an unknown ``type`` or a misspelled key is an
error naming the field. ``defense`` may also be a list: a stack of defenses (the same as
``{type: chain, defenses: [...]}``). ``load_scenario`` turns every problem into a
``ConfigError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from defense import DEFENSES
from defense.chain import defense_block
from sim.cluster import Preload
from sim.config_errors import describe_validation_error
from sim.errors import ConfigError
from sim.plugins import Context, PluginParams
from sim.policies import POLICIES
from sim.schema import MAX_REQUESTS, Strict
from sim.service_time import SERVICE_TIMES
from sim.yaml_io import DuplicateKeyError, UniqueKeyLoader, read_yaml_file, yaml_problem
from sim.zoo import LatencyModel
from workloads.arrivals import ARRIVALS
from workloads.slo import DISTRIBUTIONS

MAX_BATCH = 4096
"""The largest batch a scenario may ask for (``cluster.max_batch``)."""

if TYPE_CHECKING:  # to mypy a block is its PluginParams; pydantic validates it by its type
    PolicySpec: TypeAlias = PluginParams
    DefenseSpec: TypeAlias = PluginParams
    ServiceTimeSpec: TypeAlias = PluginParams
    ArrivalSpec: TypeAlias = PluginParams
    DistributionSpec: TypeAlias = PluginParams
else:
    PolicySpec = POLICIES.field()
    DefenseSpec = DEFENSES.field()
    ServiceTimeSpec = SERVICE_TIMES.field()
    ArrivalSpec = ARRIVALS.field()
    DistributionSpec = DISTRIBUTIONS.field()


class ZooConfig(Strict):
    """Which profile, and how to scale its times."""

    profile: Annotated[str, Field(min_length=1)]
    """A shipped profile's name (``zoosim zoo list``) or a path to a profile YAML (relative to
    the scenario file)."""
    time_scale: Annotated[float, Field(gt=0)] = 1.0
    """Multiplies every profiled time (batch latencies and load times): 2.0 is a machine twice
    as slow."""
    dispatch_ms: Annotated[float, Field(ge=0)] = 0.0
    """Fixed host time per batch beyond the profiled forward pass (see :mod:`sim.zoo`)."""
    latency_model: LatencyModel = "interpolate"
    """Batch latency between profiled sizes: ``interpolate`` (linear between neighbours) or
    ``linear`` (INFaaS's ``slope * batch + intercept`` fit over all sizes)."""


class ShedConfig(Strict):
    """Overload shedding: requests the engine refuses at arrival, unserved, so that the queue
    stays short for those that can still meet their targets (docs/results/simcheck.md,
    "Overload shedding"). Off by default. A shed request counts against goodput, and the
    records and summary count it apart from a defense's rejections (``shed``)."""

    deadline: bool = False
    """Admit by deadline: once the model is selected, refuse a request whose latency
    estimate (INFaaS's, :meth:`sim.system.ServingSystem.estimate_latency_s`, the one the
    load-aware policies use) exceeds ``slack`` times its latency target (as the policy sees it,
    after any spec defense): it would miss its deadline anyway, and queueing it would delay
    the requests behind it."""
    slack: Annotated[float, Field(gt=0)] = 1.0
    """Multiplies the latency target in the ``deadline`` rule: above 1 refuses only requests
    predicted to miss it by more (room for the estimate's error), below 1 leaves room for
    time the engine does not see (the live server's HTTP front-end)."""
    max_pending: Annotated[int, Field(ge=1)] | None = None
    """Refuse a request when this many are already in the system (queued or in service);
    null: no cap. (The live server's ``api.max_pending`` sets it.)"""
    min_retry_s: Annotated[float, Field(ge=0)] = 0.001
    """Floor of a shed request's retry hint (s): the hint is how far its estimate exceeds
    ``slack`` x target (``deadline``), this floor for ``max_pending``; the live server sends it
    as ``Retry-After``, rounded up to whole seconds, at least 1."""

    @property
    def active(self) -> bool:
        """Whether any rule is on (the records then have a ``shed`` column)."""
        return self.deadline or self.max_pending is not None


class ClusterConfig(Strict):
    """Workers and the batching rule."""

    workers: Annotated[int, Field(ge=1)] = 1
    """Accelerators ("GPUs"), each serving one batch at a time."""
    memory_mb: Annotated[float, Field(gt=0)] = 16000.0
    """Each worker's memory for loaded models; least-recently-used models are evicted."""
    max_batch: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 1
    """Inputs in a batch at most (1: no batching)."""
    batch_timeout_ms: Annotated[float, Field(ge=0)] = 0.0
    """A batch short of ``max_batch`` leaves when its oldest request has waited this long."""
    preload: Preload = "spread"
    """Models loaded at time 0: ``spread`` (the zoo partitioned over the workers, cheapest
    first), ``all`` (every model on every worker with room) or ``none`` (on demand)."""
    replicate: bool = True
    """An idle worker also loads a model whose backlog would outlast loading it."""
    shedding: ShedConfig = ShedConfig()
    """Overload shedding (off by default): refuse at arrival what cannot meet its deadline,
    and/or beyond a cap on the requests in the system."""


class ClientConfig(Strict):
    """A load generator on the same machine (``zoosim simcheck``'s): its CPU per request
    (the front-end profile's ``client`` costs) is taken from the host's cores too."""

    max_connections: Annotated[int, Field(ge=1)] = 256
    """Requests on the wire at once (``zoosim load --max-connections``); later ones wait in
    the client, and that wait counts in their latency."""


class FrontendConfig(Strict):
    """The HTTP front-end as a modeled station (issue 18; docs/serving.md, "The front-end
    model"): each request's parse/admit and answer cost CPU on ``processes`` single-threaded
    front-end processes, and the host's ``cores`` are processor-shared among them, the
    workers' forward passes (``workers_on_host``) and a local load generator (``client``).
    Off (absent) by default: then a request enters the serving system at its arrival and
    its latency ends with its batch, as before."""

    profile: Annotated[str, Field(min_length=1)]
    """The machine's front-end profile (``zoosim frontend profile``; a path, relative to the
    scenario file): the CPU costs per request, with their distributions."""
    processes: Annotated[int, Field(ge=1)] = 1
    """Front-end processes taking requests from one accept queue (the live server has one)."""
    cores: Annotated[float, Field(gt=0)] | None = None
    """The host's cores; default: the profile's machine's."""
    cpu: Literal["sharing", "queue", "run_queues"] = "sharing"
    """How the cores are shared: ``sharing``, egalitarian processor sharing among the
    runnable processes (:class:`sim.host.Host`), ``queue``, whole cores taken in turn by
    CPU bursts that run to their end (:class:`sim.host.CoreQueue`), or ``run_queues``, a
    run queue per core, processor-shared, a process's job kept on its own core unless
    another is idle (:class:`sim.host.RunQueues`; whole cores)."""
    slice_ms: Annotated[float, Field(gt=0)] | None = None
    """With ``cpu: queue``, the scheduler's time slice: a burst runs at most this long
    before a waiting one takes its core (round robin); null: to its end."""
    workers_on_host: bool = True
    """The workers' batches run on the same cores (CPU serving; false: accelerators whose
    batches take no host CPU)."""
    max_connections: Annotated[int, Field(ge=1)] | None = 4096
    """Requests the front-end holds at once (from reading one to its answer sent): more are
    refused at once, unserved and marked ``shed`` (the live server's
    ``api.max_connections``, a 503); null: no cap."""
    client: ClientConfig | None = None
    """A load generator sharing the host (null: clients are elsewhere)."""
    speed: Annotated[float, Field(gt=0)] = 1.0
    """The host's speed against the profiled machine's: every CPU cost of the profile
    divided by it (1.2: a machine 20 % faster; the workers' forward passes too when they
    run on the host; :meth:`sim.frontend_profile.FrontendProfile.at_speed`)."""

    @model_validator(mode="after")
    def _cpu_options_agree(self) -> FrontendConfig:
        if self.slice_ms is not None and self.cpu != "queue":
            raise ValueError("slice_ms needs cpu: queue (processor sharing has no time slice)")
        if self.cpu != "sharing" and self.cores is not None \
                and not float(self.cores).is_integer():
            raise ValueError(f"frontend.cores must be a whole number with cpu: {self.cpu} "
                             f"(got {self.cores})")
        if self.cpu == "run_queues" and self.processes > 1:
            raise ValueError("frontend.processes must be 1 with cpu: run_queues (its processes "
                             "would share one core's placement)")
        return self


class SloConfig(Strict):
    """The accuracy (%) and latency (ms) a tenant's requests ask for."""

    accuracy: DistributionSpec
    """The requested accuracy (top-1 %, in [0, 100])."""
    latency_ms: DistributionSpec
    """The requested end-to-end latency (ms, > 0)."""

    @model_validator(mode="after")
    def _in_range(self) -> SloConfig:
        lo, hi = DISTRIBUTIONS.build(self.accuracy, Context()).support()
        if lo < 0 or hi > 100:
            raise ValueError(f"accuracy targets must lie in [0, 100] percent, got [{lo}, {hi}]")
        lo, _ = DISTRIBUTIONS.build(self.latency_ms, Context()).support()
        if lo <= 0:
            raise ValueError(f"latency_ms targets must be > 0, got a minimum of {lo}")
        return self


class TenantConfig(Strict):
    """One client population: its arrivals and its SLO mix."""

    name: Annotated[str, Field(min_length=1)]
    """The tenant's name in the records; it also names its random streams."""
    arrivals: ArrivalSpec
    """When its requests arrive (a synthetic process or a trace replay)."""
    slo: SloConfig


class Scenario(Strict):
    """A whole simulation run."""

    stops_by_itself: ClassVar[bool] = False
    """True when something other than the tenants ends the run (e.g. an attacker)."""

    seed: Annotated[int, Field(ge=0)] = 0
    """The one seed every random stream is derived from (by name): same seed, same records."""
    requests: Annotated[int, Field(ge=1, le=MAX_REQUESTS)] | None = None
    """Arrivals stop after this many requests in all (in time order); at most
    10,000,000,000 (:data:`sim.schema.MAX_REQUESTS`)."""
    duration_s: Annotated[float, Field(gt=0)] | None = None
    """Arrivals stop at this simulated time (s); queues then drain."""
    warmup_s: Annotated[float, Field(ge=0)] = 0.0
    """Requests arriving before this time are left out of the summary (not the records)."""
    zoo: ZooConfig
    cluster: ClusterConfig = ClusterConfig()
    service_time: ServiceTimeSpec = Field(
        default_factory=lambda: SERVICE_TIMES.params_class("profile")(type="profile"))
    """How long a batch takes given its profiled median (``profile``: exactly that)."""
    policy: PolicySpec = Field(default_factory=lambda: POLICIES.params_class("infaas")(
        type="infaas"))
    """The selection policy: which zoo model serves a request."""
    defense: DefenseSpec = Field(default_factory=lambda: DEFENSES.params_class("none")(
        type="none"))
    """One defense block, or a list of them: a stack (``{type: chain, defenses: [...]}``)."""
    tenants: Annotated[list[TenantConfig], Field(min_length=1)]
    """The client populations, each with its arrivals and SLO mix (names unique)."""
    frontend: FrontendConfig | None = None
    """The HTTP front-end and the host's cores, modeled (off by default): latency then runs
    from the client's send to the answer read."""

    @field_validator("defense", mode="before")
    @classmethod
    def _stack(cls, value: Any) -> Any:
        return defense_block(value)

    @model_validator(mode="after")
    def _stops(self) -> Scenario:
        names = [t.name for t in self.tenants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tenant names must be unique; repeated: {dup}")
        endless = [t.name for t in self.tenants if not ARRIVALS[t.arrivals.type].finite]
        if endless and self.requests is None and self.duration_s is None \
                and not self.stops_by_itself:
            raise ValueError(f"tenants {endless} never stop by themselves: set `requests` or "
                             "`duration_s`")
        if self.requests is None and self.duration_s is not None:
            rate = sum(_nominal_rate(t.arrivals) for t in self.tenants)
            if rate * self.duration_s > MAX_REQUESTS:
                raise ValueError(
                    f"duration_s: {self.duration_s:g} s at the tenants' {rate:g} req/s is about "
                    f"{rate * self.duration_s:.3g} requests, more than the {MAX_REQUESTS:,} a "
                    "run may make: shorten duration_s or set `requests`")
        return self


def _nominal_rate(arrivals: Any) -> float:
    """A synthetic arrival block's rate (req/s; the higher of an MMPP's two), 0 for a trace
    replay (whose length is its trace's): to bound a ``duration_s``-only run's size."""
    rate = getattr(arrivals, "rate_rps", None)
    if rate is None:
        rate = max(getattr(arrivals, "rates_rps", None) or [0.0])
    return float(rate)


def parse_scenario(data: Any, base_dir: Path | None = None, source: str = "scenario",
                   model: type[Scenario] = Scenario) -> Scenario:
    """Validate a scenario mapping; relative file paths are taken from ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a scenario is a YAML mapping (seed, zoo, tenants, ...)")
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, data, model)}") from None


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file, refusing repeated keys, with one-line user-facing errors
    for a missing, binary or broken file (:func:`sim.yaml_io.read_yaml_file`)."""
    return read_yaml_file(path)


def apply_override(data: Any, assignment: str) -> None:
    """Apply ``a.b.0.c=VALUE`` (VALUE parsed as YAML) to a scenario mapping, in place."""
    key, sep, raw = assignment.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {assignment!r}: expected KEY.PATH=VALUE, e.g. "
                          "tenants.0.arrivals.rate_rps=500")
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader)  # a SafeLoader subclass: safe
    except DuplicateKeyError as e:
        raise ConfigError(f"--set {key.strip()}: {yaml_problem(e)}") from None
    except yaml.YAMLError:
        value = raw
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = _child(node, part)
        if nxt is None:
            raise ConfigError(f"--set {key}: no {'.'.join(parts[:i + 1])!r} in the scenario")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: {last!r} is not an index of {parts[-2]!r}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])!r} is not a mapping")


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            node[part] = {}
        return node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def load_scenario(path: str | Path, model: type[Scenario] = Scenario,
                  overrides: tuple[str, ...] = ()) -> Scenario:
    """Read and validate a scenario YAML file, after ``--set`` style overrides."""
    p = Path(path)
    data = read_yaml(p)
    if isinstance(data, dict):
        for o in overrides:
            apply_override(data, o)
    return parse_scenario(data, p.resolve().parent, str(p), model)
