"""The attack scenario: a serving scenario plus one attacker (docs/configuration.md).

PSML (Sanyal et al., arXiv 2307.01292, §4): the attacker is one more tenant of the serving
system, beside benign tenants; it has a query budget, a query pool and a strategy for choosing
the accuracy/latency spec it sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from attacks.strategies import STRATEGIES
from sim.config import Scenario, TenantConfig
from sim.plugins import PluginParams
from sim.schema import Strict

if TYPE_CHECKING:  # to mypy a strategy block is any Params model (each has a ``type`` tag)
    StrategyBlock: TypeAlias = PluginParams
else:
    StrategyBlock = STRATEGIES.field()

BudgetCounts = Literal["sent", "kept", "extraction"]
BeyondPool = Literal["stop", "repeat", "augment"]
TargetRank = ("most-accurate", "median", "least-accurate")


class SpecConfig(Strict):
    """An accuracy (%) and latency (ms) target, as a client sends it."""

    accuracy: Annotated[float, Field(ge=0, le=100)]
    latency_ms: Annotated[float, Field(gt=0)]


class SurrogateConfig(Strict):
    """The attacker's own model, trained on the victim's answers.

    Training runs a fixed number of optimiser ``steps`` whatever the number of answers, so a
    budget curve measures what the answers teach, not how many optimiser steps the budget
    happened to buy (``epochs`` instead ties the steps to the data size, as before).
    """

    arch: str = "cnn_small"
    steps: Annotated[int, Field(ge=1)] | None = None
    """Optimiser steps (mini-batches); the default when neither this nor ``epochs`` is set."""
    epochs: Annotated[int, Field(ge=1)] | None = None
    """Passes over the answers instead of ``steps`` (the step count then grows with them)."""
    lr: Annotated[float, Field(gt=0)] = 1e-2
    batch_size: Annotated[int, Field(ge=1)] = 64
    augment: bool = False

    DEFAULT_STEPS: ClassVar[int] = 1000

    @model_validator(mode="after")
    def _one_length(self) -> SurrogateConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give the training length as steps or as epochs, not both")
        return self

    def train_steps(self, n_answers: int) -> int:
        """Optimiser steps for ``n_answers`` training answers."""
        if self.epochs is not None:
            return self.epochs * -(-n_answers // self.batch_size)
        return self.steps if self.steps is not None else self.DEFAULT_STEPS


class FingerprintConfig(Strict):
    """Knobs of the black-box fingerprinting algorithm (attacks.fingerprint)."""

    candidates: Annotated[int, Field(ge=2)] = 256
    """Pool inputs whose answers are precomputed: probes are chosen among them."""
    screen: Annotated[int, Field(ge=2)] | None = None
    """Candidates sent at the lowest and the highest accuracy target to choose the probes
    (default: 16 with probabilities, 64 with top-1 labels)."""
    probes: Annotated[int, Field(ge=1)] | None = None
    """Profile probes: the screened inputs on which the cheapest and the most accurate model
    differ most; a model found while mapping is profiled on them (default: 8 with
    probabilities, 32 with top-1 labels)."""
    mapping_probes: Annotated[int, Field(ge=1)] | None = None
    """Inputs per mapping request when answers are exact (default: 1 with probabilities, 2
    with top-1 labels); noisy answers get more, up to ``max_probes``."""
    max_probes: Annotated[int, Field(ge=1)] = 16
    """Most inputs one mapping, consistency or verification request carries."""
    max_average: Annotated[int, Field(ge=1)] = 8
    """Most answers at one spec averaged while the nearest model is unclear (noisy outputs)."""
    noise_z: Annotated[float, Field(gt=0)] = 4.0
    """Standard deviations of the learned same-model spread that a model's answer may
    deviate by and still be identified as that model (attacks.identify)."""
    latency: bool = True
    """Use the answers' latency where the answers cannot tell two models apart."""
    scan_samples: Annotated[int, Field(ge=0)] = 12
    """One-input requests per segment of the map with which the latency scan looks for a
    model hidden behind its neighbour, when noisy or coarse answers may let two models answer
    every probe alike (doubled, at most twice, where a step is suggested but not shown;
    attacks.latency_scan). 0: no scan."""
    max_models: Annotated[int, Field(ge=2)] = 64
    """More distinct models than this is implausible: the attacker says so and maps again on
    top-1 labels."""
    accuracy_tolerance: Annotated[float, Field(gt=0)] = 0.01
    """Bisection stops when a threshold is bracketed this tightly (accuracy points)."""
    latency_range_ms: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = \
        (0.01, 10000.0)
    """The latency targets the API accepts; the trigger spec uses the loosest."""
    repeats: Annotated[int, Field(ge=1)] = 1
    """Identifications per spec while mapping; the most frequent model wins (an attacker
    that expects a noisy selection maps with 3 or 5)."""
    consistency_queries: Annotated[int, Field(ge=1)] = 20
    """Queries spent measuring how reliably the trigger spec reaches the target."""
    min_consistency: Annotated[float, Field(ge=0, le=1)] = 0.99
    """Below this, other specs inside the target's region are tried."""
    sample_requests: Annotated[int, Field(ge=0)] = 0
    """When the selection is seen to vary (one spec answered by several models: spec noise,
    DP selection), map again by sampling, at most this many requests, each carrying the
    profile probes (and, where one input tells the models apart, a one-input request whose
    latency is timed): models ordered by their batch-1 latency, or by the mean accuracy that
    drew them (attacks.sampling). Screening then also repeats the highest target until two
    answers are equal (at most 6 times). 0: trust the bisection map (the paper's attacker)."""


class AttackerConfig(Strict):
    """One attacker: strategy, target, budget, pool, outputs seen, surrogate."""

    strategy: StrategyBlock
    """A block of :data:`attacks.strategies.STRATEGIES` (``{type: naive, spec: ...}``); a bare
    name (``strategy: oracle``) is a block with no other parameters."""
    target: str = "most-accurate"
    """A model name, or most-accurate | median | least-accurate (of the Pareto front)."""
    budget: Annotated[int, Field(ge=1)]
    """Inputs the attacker may send; what counts is ``budget_counts``."""
    budget_counts: BudgetCounts = "sent"
    """``sent``: every input sent, in every phase (screening, mapping, consistency checks,
    extraction, verification; discarded ones too): strategies compared at one budget cost the
    same. ``kept``: with ``verify``, query until ``budget`` verified answers are kept (at most
    ``max_sent_factor`` times the budget of extraction inputs sent; fingerprinting is not
    capped): the adaptive attacker's cost measure. ``extraction``: extraction inputs only,
    fingerprinting free: the "equal extraction budget" view, never an equal-cost comparison."""
    max_sent_factor: Annotated[float, Field(ge=1)] = 20.0
    inputs_per_request: Annotated[int, Field(ge=1)] = 8
    extract: bool = True
    """False: fingerprint only, no extraction and no surrogate (query-cost studies; the only
    mode on zoos without weights, whose answers are then synthetic)."""
    verify: bool = False
    """Verify each extraction response with probes riding along; discard and re-query what
    another model answered (the adaptive attacker)."""
    pool: str = "mnist5k-attacker"
    beyond_pool: BeyondPool = "stop"
    """When every pool input has been sent once: ``stop`` (extraction inputs are distinct; the
    attack ends there and reports it), ``repeat`` (exact repeats, in a new random order) or
    ``augment`` (shifted copies, up to 2 px)."""
    outputs: Literal["probabilities", "labels"] = "probabilities"
    surrogate: SurrogateConfig = SurrogateConfig()
    rate_rps: Annotated[float, Field(gt=0)] = 50.0
    """Requests per second the attacker sends at most (all its identities together)."""
    identities: Annotated[int, Field(ge=1, le=10_000)] = 1
    """Client identities (sybils) the attacker spreads its requests over, in turn, so that a
    per-client detector sees each one send only every ``identities``-th request."""
    start_s: Annotated[float, Field(ge=0)] = 0.0
    """When the attacker starts (after benign load has built up)."""
    fingerprint: FingerprintConfig = FingerprintConfig()

    @model_validator(mode="before")
    @classmethod
    def _spec_into_strategy(cls, data: Any) -> Any:
        """Read the attacker-level ``spec`` of older configs.

        ``spec`` used to sit beside ``strategy``, so one base scenario could serve a grid over
        strategies (``--set attacker.strategy=naive``). It is moved into the strategy block when
        that strategy takes a ``spec`` (naive) and dropped otherwise, as it was ignored there.
        """
        if not isinstance(data, dict) or "spec" not in data:
            return data
        data = dict(data)
        spec = data.pop("spec")
        block = data.get("strategy")
        if isinstance(block, PluginParams):
            block = block.model_dump()
        tag = block if isinstance(block, str) else \
            block.get("type") if isinstance(block, dict) else None
        if spec is None or not isinstance(tag, str) or tag not in STRATEGIES or \
                "spec" not in STRATEGIES.params_class(tag).model_fields:
            return data
        block = {"type": block} if isinstance(block, str) else dict(block)
        if "spec" in block:
            raise ValueError("`spec` is given twice: in attacker.strategy and at attacker level "
                             "(keep the one in attacker.strategy)")
        data["strategy"] = block | {"spec": spec}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AttackerConfig:
        if self.budget_counts == "kept" and not self.verify:
            raise ValueError("budget_counts: kept needs verify: true (only verified answers "
                             "can be counted as kept)")
        return self


class AttackScenario(Scenario):
    """A scenario with an attacker; benign arrivals stop when the attacker is done."""

    stops_by_itself: ClassVar[bool] = True
    tenants: list[TenantConfig] = Field(default_factory=list)
    attacker: AttackerConfig
    frontend: None = None
    """Not for attacks yet: the simulated attacker submits to the serving system directly,
    past a modeled front-end (docs/serving.md, "The front-end model")."""

    @field_validator("frontend", mode="before")
    @classmethod
    def _no_frontend(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("the front-end model is not available to attack scenarios yet "
                             "(the simulated attacker submits to the serving system directly)")
        return None
