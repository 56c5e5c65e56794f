"""A scenario's request schedule: the exact requests the simulator would see, as a table.

The load generator (``zoosim load``) replays a simulate scenario's workload open-loop against
the live server; to compare the two it must send the very requests the simulator serves. So
the schedule is produced by the scenario's own arrival source (:class:`sim.source.ArrivalSource`,
the same named random streams and :class:`sim.source.StopRule` as :class:`sim.run.Simulation`)
run on the simulator's environment against a sink that only records what is submitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.build import tenant_plugins
from sim.env import Environment
from sim.request import Request
from sim.rng import SeedTree
from sim.source import ArrivalSource, StopRule

if TYPE_CHECKING:
    from sim.config import Scenario

SCHEDULE_COLUMNS = ("id", "tenant", "arrival_s", "acc_req", "lat_req_ms", "size")


class RecordingSink:
    """Stands in for the serving system: keeps every submitted request, serves none."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def submit(self, req: Request) -> None:
        self.requests.append(req)


def request_schedule(scenario: Scenario, base_dir: Path | None = None) -> pd.DataFrame:
    """The scenario's requests by id: ``id, tenant, arrival_s, acc_req, lat_req_ms, size``.

    ``base_dir`` is accepted for symmetry with :func:`sim.run.simulate`; trace paths are
    already resolved when the scenario is validated.
    """
    del base_dir
    seeds = SeedTree(scenario.seed)
    env = Environment()
    sink = RecordingSink()
    source = ArrivalSource(env, sink.submit, StopRule(scenario.requests, scenario.duration_s))
    names = [t.name for t in scenario.tenants]
    for idx, t in enumerate(scenario.tenants):
        source.add(idx, *tenant_plugins(t, seeds))
    env.run()
    reqs = sorted(sink.requests, key=lambda r: r.id)
    n = len(reqs)
    return pd.DataFrame({
        "id": np.fromiter((r.id for r in reqs), dtype="i8", count=n),
        "tenant": pd.Categorical.from_codes(
            np.fromiter((r.tenant for r in reqs), dtype="i8", count=n),
            categories=pd.Index(names)),
        "arrival_s": np.fromiter((r.arrival for r in reqs), dtype="f8", count=n),
        "acc_req": np.fromiter((r.acc_req for r in reqs), dtype="f8", count=n),
        "lat_req_ms": np.fromiter((r.lat_req_ms for r in reqs), dtype="f8", count=n),
        "size": np.fromiter((r.size for r in reqs), dtype="i4", count=n),
    })
