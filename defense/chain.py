"""``chain``: several defenses at once, e.g. spec noise plus DP selection plus rounding.

A chain is how a scenario writes a stack of defenses (``defense: {type: chain, defenses:
[...]}``, or simply a list): the stack (:mod:`defense.stack`) takes its members, in order, into
their roles. At most one member (nested chains included) may select the model. Each member
draws from its own child of the chain's stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import Field, field_validator

from defense.base import DEFENSES, Defense, Selector
from sim.plugins import Context, PluginParams

if TYPE_CHECKING:  # to mypy a block is its PluginParams; pydantic validates it by its type
    DefenseBlock: TypeAlias = PluginParams
else:
    DefenseBlock = DEFENSES.field()


@DEFENSES.register("chain")
class Chain(Defense):
    """A container: its members, built in order, each on a child stream of the chain's."""

    class Params(PluginParams):
        type: Literal["chain"] = "chain"
        defenses: Annotated[list[DefenseBlock], Field(min_length=1)]

        @field_validator("defenses")
        @classmethod
        def _one_selector(cls, members: list[PluginParams]) -> list[PluginParams]:
            if sum(selectors(m) for m in members) > 1:
                raise ValueError("at most one member may select the model")
            return members

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        children = self.rng.spawn(len(params.defenses))
        self.members: list[Defense] = [
            DEFENSES.build(p, ctx.with_generator(child))
            for p, child in zip(params.defenses, children, strict=True)]


def defense_block(value: Any) -> Any:
    """A defense block in one form: a list is a stack (a chain; an empty one, no defense),
    anything else as given (a scenario's ``defense``, ``flagged_only``'s, a study's grid)."""
    if isinstance(value, list):
        return {"type": "chain", "defenses": value} if value else {"type": "none"}
    return value


def in_role(params: PluginParams, role: type[Defense]) -> int:
    """How many defenses of ``role`` (a :mod:`defense.base` role class) a block holds,
    counting the members of containers (a chain's, ``flagged_only``'s)."""
    if isinstance(params, Chain.Params):
        return sum(in_role(m, role) for m in params.defenses)
    inner = getattr(params, "defense", None)   # a container of one block (flagged_only)
    if isinstance(inner, PluginParams):
        return in_role(inner, role)
    return int(issubclass(DEFENSES.get(params.type), role))


def selectors(params: PluginParams) -> int:
    """How many selecting defenses a block holds (a chain counts its members')."""
    return in_role(params, Selector)
