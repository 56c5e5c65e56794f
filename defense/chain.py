"""``chain``: several defenses at once, e.g. spec noise plus DP selection plus rounding.

Spec perturbations apply in order, at most one member may select the model, and output
perturbations compose in order. Each member draws from its own child of the chain's stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from defense.base import Defense
from sim.config_errors import describe_validation_error
from sim.request import Request
from sim.schema import Strict, plugin_union
from sim.zoo import Zoo


def _registry() -> dict[str, Any]:
    from defense import DEFENSES

    return DEFENSES


class Chain(Defense):
    """The members' hooks, in order."""

    class Params(Strict):
        type: Literal["chain"] = "chain"
        defenses: Annotated[list[Any], Field(min_length=1)]

        @field_validator("defenses")
        @classmethod
        def _members(cls, members: list[Any]) -> list[Any]:
            adapter: TypeAdapter[Any] = TypeAdapter(plugin_union(_registry()))
            out = []
            for i, m in enumerate(members):
                try:
                    out.append(adapter.validate_python(m))
                except ValidationError as e:
                    raise ValueError(f"[{i}]: {describe_validation_error(e, m)}") from None
            if sum(_registry()[m.type].selects for m in out) > 1:
                raise ValueError("at most one member may select the model")
            return out

    def __init__(self, params: Params, rng: np.random.Generator, zoo: Zoo) -> None:
        super().__init__(params, rng, zoo)
        reg = _registry()
        self.members: list[Defense] = [reg[p.type](p, child, zoo) for p, child in
                                       zip(params.defenses, rng.spawn(len(params.defenses)),
                                           strict=True)]
        self.active = any(m.active for m in self.members)
        self.selects = any(m.selects for m in self.members)
        self.changes_outputs = any(m.changes_outputs for m in self.members)

    def perturb(self, req: Request) -> None:
        for m in self.members:
            if m.active:
                m.perturb(req)

    def select(self, req: Request) -> tuple[int, bool]:
        return next(m for m in self.members if m.selects).select(req)

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        for m in self.members:
            if m.changes_outputs:
                probs = m.perturb_outputs(probs)
        return probs
