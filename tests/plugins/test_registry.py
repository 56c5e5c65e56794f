"""The registry contract: what registration checks, how blocks are validated, and the errors
a user sees for an unknown type, a bad field inside a block, or a broken plugin."""

from __future__ import annotations

from typing import Literal

import pytest

from sim.config import parse_scenario
from sim.errors import ConfigError
from sim.plugins import Context, PluginParams, Registry


class Base:
    Params: type[PluginParams]

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params


def test_register_checks_the_class_and_its_type_tag() -> None:
    reg: Registry[Base] = Registry("thing", Base)

    @reg.register("a")
    class A(Base):
        class Params(PluginParams):
            type: Literal["a"] = "a"
            size: int = 1

    assert reg.get("a") is A and "a" in reg
    built = reg.build(reg.parse({"type": "a", "size": 3}), Context())
    assert isinstance(built, A) and built.params == A.Params(size=3)
    with pytest.raises(TypeError, match="registered as 'b'"):
        reg.register("b")(A)
    with pytest.raises(TypeError, match="is not a Base"):
        reg.register("c")(int)  # type: ignore[arg-type]

    class Other(Base):
        Params = A.Params

    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(Other)
    with pytest.raises(ConfigError, match=r"unknown thing type 'zzz'; expected one of \['a'\]"):
        reg.get("zzz")


@pytest.mark.parametrize(("block", "message"), [
    ({"type": "warp"}, "policy: unknown type 'warp'; expected one of 'infaas', 'pareto'"),
    ({"kind": "pareto"}, "policy: missing 'type'"),
    ({"type": "pareto", "speed": 1}, "policy: unknown key 'speed'"),
    ("pareto", None),   # a bare name is the block of that type with its defaults
])
def test_scenario_blocks_are_checked_against_the_registry(block: object,
                                                          message: str | None) -> None:
    data = {"zoo": {"profile": "synthetic-7"}, "requests": 10, "policy": block,
            "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": 10},
                         "slo": {"accuracy": {"type": "fixed", "value": 90},
                                 "latency_ms": {"type": "fixed", "value": 10}}}]}
    if message is None:
        assert parse_scenario(data).policy.type == "pareto"
        return
    with pytest.raises(ConfigError) as err:
        parse_scenario(data)
    assert message in str(err.value)


def test_an_error_inside_a_nested_block_names_its_full_path() -> None:
    data = {"zoo": {"profile": "synthetic-7"}, "requests": 10,
            "defense": [{"type": "gaussian", "accuracy_sd": 1}, {"type": "rounding",
                                                                  "decimals": -1}],
            "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": -5},
                         "slo": {"accuracy": {"type": "fixed", "value": 90},
                                 "latency_ms": {"type": "fixed", "value": 10}}}]}
    with pytest.raises(ConfigError, match=r"defense\.defenses\[1\]\.decimals: .*1 more"):
        parse_scenario(data)
    data["defense"] = {"type": "none"}
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.arrivals\.rate_rps: "):
        parse_scenario(data)
