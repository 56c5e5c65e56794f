"""Helpers of the workload tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.plugins import Context
from workloads.arrivals import ARRIVALS
from workloads.arrivals.base import ArrivalProcess


def build_arrivals(params: dict[str, Any], base_dir: Path | None = None,
                   seed: int = 0) -> ArrivalProcess:
    """Validate a block as the engine does (paths relative to ``base_dir``) and build the
    process as ``cls(params, ctx)``, drawing from a stream seeded ``seed``."""
    block = ARRIVALS.params_class(params["type"]).model_validate(
        params, context={"base_dir": base_dir})
    return ARRIVALS.build(block, Context(generator=np.random.default_rng(seed)))
