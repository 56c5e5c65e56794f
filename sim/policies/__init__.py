"""Selection policies, registered by the name a scenario's ``policy: {type: ...}`` uses."""

from __future__ import annotations

from typing import Any

from sim.policies.base import Policy, SystemView
from sim.policies.infaas import InfaasPolicy
from sim.policies.pareto import ParetoPolicy

POLICIES: dict[str, Any] = {
    "pareto": ParetoPolicy,
    "infaas": InfaasPolicy,
}

__all__ = ["POLICIES", "Policy", "SystemView"]
