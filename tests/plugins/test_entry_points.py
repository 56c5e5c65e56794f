"""A package outside zoosim registers a policy and a defense through the ``zoosim.plugins``
entry point, and a scenario uses them by ``type:`` without any edit to zoosim: the example
plugin of examples/plugin, made importable (with its entry point) in a fresh process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples" / "plugin"


def install_plugin(site: Path) -> None:
    """What ``pip install`` leaves behind: the module, and a dist-info with the entry points
    declared in the plugin's pyproject.toml."""
    text = (PLUGIN / "pyproject.toml").read_text()   # (tomllib needs Python 3.11)
    version = re.search(r'^version = "([^"]+)"', text, re.M)
    section = re.search(r'^\[project.entry-points."zoosim.plugins"\]\n((?:\w+ = .+\n)+)', text,
                        re.M)
    assert version and section
    shutil.copy(PLUGIN / "zoosim_example_plugin.py", site)
    info = site / f"zoosim_example_plugin-{version[1]}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoosim-example-plugin\n"
                                   f"Version: {version[1]}\n")
    (info / "entry_points.txt").write_text("[zoosim.plugins]\n" + section[1].replace('"', ""))


def simulate(site: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "sim", "simulate",
                           str(PLUGIN / "scenario.yaml"), "-o", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_a_plugin_installed_beside_zoosim_is_used_by_type(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    res = simulate(site, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["served_by"] == {"vgg_small": 2000}   # the plugin's policy chose
    df = pd.read_parquet(tmp_path / "out" / "requests.parquet")
    assert (df["acc_spec"] >= 90).all()                   # the plugin's defense perturbed
    assert (df["acc_req"] < 90).any()


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    res = simulate(tmp_path, tmp_path / "out")   # nothing installed there
    assert res.returncode == 2
    assert "policy: unknown type 'most_accurate'" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
