"""Workloads: arrival processes, per-tenant SLO mixes, and real-trace replay.

``ARRIVALS`` (workloads.arrivals) and ``DISTRIBUTIONS`` (workloads.slo) are the registries
that a scenario's ``arrivals: {type: ...}`` and ``slo: {accuracy: {type: ...}}`` name.
"""
