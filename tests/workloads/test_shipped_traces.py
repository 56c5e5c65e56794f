"""The trace samples ship with zoosim: a bare file name in a scenario names one, from any
folder; a name that is neither beside the config nor shipped is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import parse_scenario
from sim.errors import ConfigError
from sim.schema import SHIPPED_TRACES

NAME = "azure_functions_2019_10fn_invocations_per_minute.csv"


def scenario(path: str) -> dict[str, object]:
    return {"seed": 1, "zoo": {"profile": "mnist5k-cpu"},
            "tenants": [{"name": "replay",
                         "arrivals": {"type": "azure_functions_2019", "path": path,
                                      "function": 3, "start_minute": 600, "minutes": 1},
                         "slo": {"accuracy": {"type": "fixed", "value": 90},
                                 "latency_ms": {"type": "fixed", "value": 50}}}]}


def test_every_shipped_trace_carries_its_attribution() -> None:
    readme = (SHIPPED_TRACES / "README.md").read_text()
    assert "CC-BY-4.0" in readme and "Microsoft" in readme and "Changes" in readme
    for csv in sorted(SHIPPED_TRACES.glob("*.csv")):
        assert f"`{csv.name}`" in readme, csv.name


def test_a_bare_name_is_a_shipped_trace_from_any_folder(tmp_path: Path) -> None:
    sc = parse_scenario(scenario(NAME), tmp_path)
    assert Path(sc.tenants[0].arrivals.path) == (SHIPPED_TRACES / NAME).resolve()


def test_a_file_beside_the_config_comes_first(tmp_path: Path) -> None:
    mine = tmp_path / NAME
    mine.write_bytes((SHIPPED_TRACES / NAME).read_bytes())
    sc = parse_scenario(scenario(NAME), tmp_path)
    assert Path(sc.tenants[0].arrivals.path) == mine.resolve()


@pytest.mark.parametrize("path", ["no_such_trace.csv", "sub/" + NAME])
def test_an_unknown_trace_names_the_field(tmp_path: Path, path: str) -> None:
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.arrivals\.path: file not found"):
        parse_scenario(scenario(path), tmp_path)
