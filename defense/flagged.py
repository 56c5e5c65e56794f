"""``flagged_only``: a response that acts on flagged clients alone (issue 15).

A detector (:mod:`defense.detect`, or ``rate_limit`` with ``action: flag``) marks requests;
``flagged_only`` wraps any other defense (spec noise, DP selection, an output post-processor,
a rate limit, or a chain of them) so that it acts only on flagged requests and leaves every
other client's requests as an undefended system would serve them. A serving operator pays the
defense's goodput cost only on the clients it suspects. Place it after the detector in the
stack: admission defenses run in order, so a rate limit inside ``flagged_only`` sees the flag
the detector set on the same request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from defense.base import DEFENSES, Defense, leaves
from defense.chain import DefenseBlock, defense_block
from sim.plugins import Context, PluginParams


@DEFENSES.register("flagged_only")
class FlaggedOnly(Defense):
    """A container: its one member (or chain) acts on flagged requests only."""

    class Params(PluginParams):
        type: Literal["flagged_only"] = "flagged_only"
        defense: DefenseBlock
        """One block, or a list of them (a chain)."""

        @field_validator("defense", mode="before")
        @classmethod
        def _stack(cls, value: Any) -> Any:
            return defense_block(value)

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.members: list[Defense] = [DEFENSES.build(params.defense, ctx.with_generator(
            self.rng.spawn(1)[0]))]
        for d in leaves(self.members):
            d.only_flagged = True
