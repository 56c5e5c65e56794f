"""An example zoosim plugin: a selection policy and a defense registered from outside zoosim.

Importing this module registers them; zoosim imports it through the ``zoosim.plugins``
entry point in this folder's pyproject.toml, the first time a scenario names a plugin type.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from defense import DEFENSES, SpecPerturber
from sim.plugins import Context, PluginParams
from sim.policies import POLICIES, Policy, SystemView
from sim.request import Request


@POLICIES.register("most_accurate")
class MostAccurate(Policy):
    """Always the zoo's most accurate model (ties: the faster), whatever the request asks."""

    class Params(PluginParams):
        type: Literal["most_accurate"] = "most_accurate"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        zoo = self.zoo
        self.best = max(range(len(zoo)), key=lambda m: (zoo.accuracy[m], -zoo.lat1_ms[m]))

    def select(self, req: Request, state: SystemView, now: float) -> tuple[int, bool]:
        zoo = self.zoo
        feasible = (zoo.accuracy[self.best] >= req.acc_spec
                    and zoo.lat1_ms[self.best] <= req.lat_spec_ms)
        return self.best, feasible


@DEFENSES.register("accuracy_floor")
class AccuracyFloor(SpecPerturber):
    """Raises every requested accuracy to at least ``floor`` percent."""

    class Params(PluginParams):
        type: Literal["accuracy_floor"] = "accuracy_floor"
        floor: Annotated[float, Field(ge=0, le=100)]

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.floor = params.floor

    def perturb(self, req: Request) -> None:
        req.acc_spec = max(req.acc_spec, self.floor)
