"""Killing a sweep leaves no worker behind: SIGKILL, SIGTERM or SIGINT of the sweep process,
with the local pool and with a Dask LocalCluster (experiments.runner, "no worker behind").

Each case starts ``zoosim sweep`` in a subprocess with 2 workers on points far too long to
finish, waits until its workers exist, signals the sweep process alone (not its group), and
polls until every process that descended from it is gone. The deadline is generous and only
there to end the test; nothing is asserted about speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.experiments.test_sweep import write_study

pytestmark = pytest.mark.slow

DEADLINE_S = 30.0
# A Python whose SIGINT raises KeyboardInterrupt even where the shell running the tests
# ignores SIGINT (background jobs), then the zoosim command line.
LAUNCH = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from sim.cli import main; main(sys.argv[1:], prog_name='zoosim')")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The parent's child processes that run points (not multiprocessing's resource
    tracker)."""
    out = []
    for c in parent.children():
        try:
            if "resource_tracker" not in " ".join(c.cmdline()):
                out.append(c)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("backend", ["local", "dask"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_killed_sweep_leaves_no_worker(tmp_path: Path, backend: str, sig: int) -> None:
    if backend == "dask":
        pytest.importorskip("distributed")
    path = write_study(tmp_path, requests=5_000_000, seeds=[1, 2, 3],
                       grid={"policy.type": ["pareto", "infaas"]})
    cmd = [sys.executable, "-c", LAUNCH, "sweep", str(path), "-o", str(tmp_path / "o"),
           "--backend", backend, "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while len(_workers(parent)) < 2:
            assert proc.poll() is None, "the sweep ended before its workers started"
            assert time.monotonic() < deadline, "the sweep's workers never started"
            time.sleep(0.1)
        time.sleep(1.0)  # let them start on their points
        family = parent.children(recursive=True)
        os.kill(proc.pid, sig)
        proc.wait(timeout=DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p.pid for p in family if _alive(p)]
        assert not left, f"workers left behind after {signal.Signals(sig).name}: {left}"
        assert not list((tmp_path / "o" / "points").glob("*.json")), "points finished?"
    finally:  # whatever happened, leave nothing running
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                if _alive(p):
                    p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
