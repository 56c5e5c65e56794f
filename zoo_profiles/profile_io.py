"""Writing zoo profiles: compact, stable YAML that :func:`sim.profiles.load_profile` validates.

Each latency entry is written in flow style (``1: {p50: 0.0102, p99: 0.0299}``) so a profile
reads as a table; keys keep their insertion order. Writes are atomic (temporary file, then
rename), and every written profile is loaded back through the validating loader, so the
profiler can never ship a file the simulator would reject.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from sim.profiles import ZooProfile, load_profile


class _Flow(dict[str, Any]):
    """A mapping dumped in YAML flow style."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)


def dump_profile(data: dict[str, Any]) -> str:
    """The YAML text of a profile mapping (latency entries in flow style)."""
    models = []
    for m in data.get("models", []):
        lat = {int(b): _Flow(s) for b, s in m["latency_ms"].items()}
        models.append({**m, "latency_ms": lat})
    return yaml.dump({**data, "models": models}, Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=True)


def write_profile(path: str | Path, data: dict[str, Any]) -> ZooProfile:
    """Write ``data`` to ``path`` atomically, then load and validate it (ConfigError if bad)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_profile(data))
    os.replace(tmp, path)
    return load_profile(path)
