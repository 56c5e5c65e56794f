"""attack.json: what an attack spent, found, extracted and scored (PSML §4).

:class:`AttackReport` is the file (its fields, in order, are the file's keys); built by
:func:`attacks.run.attack_report` with only the keys that apply and written with
:meth:`~sim.summary.OutputModel.to_json`: e.g. ``extraction.distinct_inputs`` and
``training_s`` are absent where no surrogate was trained, ``benign`` is absent from a live
attack and ``live`` from a simulated one, while a score that cannot be known is null.
"""

from __future__ import annotations

from typing import Literal

from attacks.config import BudgetCounts
from sim.summary import OutputModel, Summary


class RequestCounts(OutputModel):
    """Requests sent, by phase (one request carries several inputs)."""

    screening: int
    """Requests of the screening phase of fingerprinting."""
    mapping: int
    """Requests of the mapping phase of fingerprinting (spec space to serving models)."""
    consistency: int
    """Requests of the consistency phase of fingerprinting (the trigger spec under load)."""
    extraction: int
    """Requests carrying extraction inputs."""
    fingerprint: int
    """Requests of fingerprinting: ``screening`` + ``mapping`` + ``consistency``."""
    total: int
    """Every request sent."""


class QueriesReport(OutputModel):
    """Queries spent (inputs, unless said otherwise), by phase, and the budget."""

    screening: int
    """Probe inputs sent while screening (fingerprinting)."""
    mapping: int
    """Probe inputs sent while mapping the spec space (fingerprinting)."""
    consistency: int
    """Probe inputs sent while measuring the trigger spec's consistency (fingerprinting)."""
    extraction: int
    """Extraction inputs sent (those whose answers were kept, and any discarded)."""
    verification: int
    """Probe inputs riding along extraction requests to verify the serving model
    (``attacker.verify``)."""
    fingerprint: int
    """Inputs of fingerprinting: ``screening`` + ``mapping`` + ``consistency``."""
    discarded: int
    """Extraction inputs whose answers verification discarded, as another model's (also
    counted in ``extraction``)."""
    total: int
    """Every input sent: fingerprinting, extraction and verification."""
    requests: RequestCounts
    """Requests sent, by phase."""
    budget: int
    """The attacker's budget (inputs; what counts is ``budget_counts``)."""
    budget_counts: BudgetCounts
    """What the budget counts: ``sent`` (every input), ``kept`` (verified extraction answers
    kept) or ``extraction`` (extraction inputs; fingerprinting is free)."""


class FingerprintReport(OutputModel):
    """What fingerprinting found; null where the strategy does not fingerprint, or where the
    ground truth (the model behind each answer) is unknown."""

    complete: bool | None
    """Whether fingerprinting finished within the budget (null for a strategy that does not
    fingerprint)."""
    models_found: int | None
    """Models told apart on the map of the spec space."""
    identification_accuracy: float | None
    """How well the attacker's models match the real ones, 0-1: over every identification
    attempt (mapping, consistency and verification answers), the smaller of the purity of
    the attacker's models w.r.t. the true serving model and its inverse (null without ground
    truth)."""
    trigger_consistency: float | None
    """Fraction of the extraction requests answered that the target model really served,
    0-1 (null without extraction requests or ground truth)."""
    estimated_consistency: float | None
    """The attacker's own estimate of ``trigger_consistency``, from its consistency probes,
    0-1."""
    trigger_spec: dict[str, float] | None
    """The spec the attacker sends to reach the target: ``accuracy`` (%) and ``latency_ms``
    (ms)."""
    thresholds: list[float] | None
    """Accuracy targets (%) where the serving model changes, on the map of the spec space
    (rounded to 0.001)."""
    zoo_models: int
    """Models in the zoo."""
    front_models: int
    """Models on the zoo's accuracy/latency Pareto front."""
    cost_per_model: float | None = None
    """Fingerprinting inputs per model found (screening, mapping and consistency)."""
    identified_on: Literal["probabilities", "labels"] | None = None
    """What identification compared: the answers' probabilities, or top-1 labels (the
    attacker sees only labels, or fell back to them; see ``warning``)."""
    noise: float | None = None
    """Learned spread of one model's answers: mean per-probe squared Euclidean distance of an
    answer from the model's mean answer (0: exact answers)."""
    latency_decided: int | None = None
    """Identifications that latency decided where the answers could not."""
    selection_varies: bool | None = None
    """Whether one spec was seen answered by several models (spec noise, DP selection)."""
    sampled_requests: int | None = None
    """Requests of the sampling map (``fingerprint.sample_requests``; 0: bisection's map was
    kept)."""
    latency_split: int | None = None
    """Models the latency scan found hidden behind a neighbour whose answers they share
    (``fingerprint.scan_samples``)."""
    warning: str | None = None
    """Why the map was implausible (more models than a zoo plausibly holds) and what the
    attacker did about it; null when nothing was wrong."""


class ExtractionReport(OutputModel):
    """The extraction inputs kept (their answers train the surrogate)."""

    kept_inputs: int
    """Extraction inputs whose answers were kept."""
    distinct_inputs: int | None = None
    """Distinct inputs (pool index and pixel shift) among those kept; absent without
    extraction (``attacker.extract: false``) or weights."""
    served_by: dict[str, int] | None
    """Kept inputs per serving model name; null where the serving model of some is unknown
    (a live server without records)."""
    from_target: float | None = None
    """Share of the kept inputs that the target served, 0-1 (what verification is for);
    absent without kept inputs, null where the serving model of some is unknown."""
    pool_exhausted: bool
    """Whether extraction ran out of fresh pool inputs (``attacker.beyond_pool: stop``)."""
    training_s: float | None = None
    """Wall time to get the kept inputs' answers, train the surrogate and score it (s);
    absent when no surrogate was trained."""


class SurrogateReport(OutputModel):
    """The attacker's surrogate model and its scores on the test split."""

    arch: str
    """The surrogate's architecture."""
    steps: int
    """Optimiser steps it was trained for (0: untrained)."""
    accuracy: float
    """Top-1 accuracy on the test split's labels (%; NaN without extraction or weights)."""
    fidelity: float
    """Top-1 agreement with the target model on the test split (%; NaN without extraction or
    weights)."""


class VictimReport(OutputModel):
    """The target model."""

    accuracy: float
    """The target's profiled test accuracy (%)."""


class LiveReport(OutputModel):
    """How an attack on a live server went."""

    url: str
    """The server's base URL."""
    wall_s: float
    """Wall time of the attack against the server, until its last answer (s)."""
    records: bool
    """Whether the server kept records, giving the ground truth for scoring."""
    http_requests: int
    """HTTP requests sent (a logical request larger than the server's ``max_inputs`` is
    split; retries count)."""
    retries: int
    """429/503 answers retried after ``Retry-After``."""


class DetectionReport(OutputModel):
    """How a per-client detector (an admission defense; :mod:`defense.detect`) saw the
    attacker's identities; present when the serving system has an admission defense."""

    identities: int
    """Client identities the attacker spread its requests over (``attacker.identities``)."""
    flagged_identities: int
    """Identities with at least one request flagged (or rejected) by admission."""
    first_flag_request: int | None
    """The attacker's request number (1-based, over all identities) first flagged; null if
    none was."""
    first_flag_inputs: int | None
    """Inputs the attacker had sent up to and including that request."""
    flagged_requests: float
    """Share of the attacker's requests flagged or rejected."""


class AttackReport(OutputModel):
    """attack.json (fields in file order; see the module docstring for conditional keys)."""

    strategy: str
    """The attacker's strategy (``attacker.strategy.type``)."""
    target_model: str
    """Name of the model the attacker aims to extract."""
    queries: QueriesReport
    """Queries spent, by phase, and the budget."""
    fingerprint: FingerprintReport
    """What fingerprinting found."""
    extraction: ExtractionReport
    """The extraction inputs kept."""
    surrogate: SurrogateReport
    """The surrogate and its scores."""
    victim: VictimReport
    """The target model."""
    outputs: Literal["probabilities", "labels"]
    """What the attacker saw of each answer: ``probabilities`` or top-1 ``labels``."""
    verify: bool
    """Whether extraction requests carried verification probes (``attacker.verify``)."""
    seed: int
    """The scenario's root seed."""
    benign: Summary | None = None
    """summary.json of the benign tenants alone (no ``littles_law``); absent from a live
    attack."""
    live: LiveReport | None = None
    """The live run; present only in an attack on a live server."""
    detection: DetectionReport | None = None
    """What admission saw of the attacker; present when the scenario has an admission
    defense."""
