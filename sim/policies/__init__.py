"""Selection policies, registered by the name a scenario's ``policy: {type: ...}`` uses.

Importing this package registers the built-in ones (``pareto``, ``infaas``); another policy is
one module with a ``@POLICIES.register("name")`` class (see :mod:`sim.plugins`).
"""

from __future__ import annotations

from sim.policies import infaas, pareto
from sim.policies.base import POLICIES, Policy, SystemView

__all__ = ["POLICIES", "Policy", "SystemView", "infaas", "pareto"]
