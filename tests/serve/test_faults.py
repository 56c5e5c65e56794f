"""Faults of the live server: corrupt weights refused at start (exit 2, one line), a killed
worker process answered with 503 and restarted, a model whose weights break after start-up
failing its own requests (503, promptly) while the server serves the rest.

Behaviour only (status codes, counts, recovery): every wait polls with a generous deadline
and every request has a client timeout, so a busy machine makes them slower, never wrong."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from serve.client import sync_client
from serve.config import ServeScenario
from serve.live import servable_profile
from serve.procexec import ProcessExecutor
from serve.protocol import encode_inputs
from serve.server import ServerThread
from sim.errors import UserError
from sim.profiles import PROFILE_DIR, available_profiles, load_profile
from tests.helpers import REPO

DEADLINE_S = 300.0
"""Longest any wait here may take (a worker restart imports torch and loads its models)."""
TIMEOUT_S = 120.0
"""Client timeout: an answer that never comes fails the test instead of hanging it."""
BODY = {"inputs": encode_inputs(np.zeros((1, 1, 28, 28), dtype=np.float32)),
        "accuracy": 0, "latency_ms": 1000}


def copy_profile(tmp_path: Path, name: str = "mnist5k-cpu", drop_digests: bool = False) -> Path:
    """A copy of a shipped profile and its weights in ``tmp_path`` (to corrupt freely)."""
    shutil.copytree(PROFILE_DIR / name, tmp_path / name)
    data = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text())
    if drop_digests:
        for m in data["models"]:
            m.pop("weights_sha256", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def flip_a_byte(path: Path) -> None:
    """Change one byte of the tensor data: the safetensors header stays valid."""
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + (len(data) - 8 - header) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scenario(profile: str | Path = "mnist5k-cpu", **cluster: Any) -> ServeScenario:
    api = cluster.pop("api", {})
    return ServeScenario.model_validate({
        "zoo": {"profile": str(profile)}, "policy": {"type": "pareto"},
        "cluster": {"workers": 1, "max_batch": 8, "batch_timeout_ms": 2, "preload": "all",
                    **cluster},
        "api": {"port": 0, **api}})


def wait_for(what: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not what():
        assert time.monotonic() < deadline, f"gave up waiting: {message}"
        time.sleep(0.05)


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP takes effect asynchronously)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():  # no procfs: a moment is plenty
        time.sleep(0.5)
        return True
    return stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def health(url: str) -> tuple[int, dict[str, Any]]:
    with sync_client(url, timeout_s=TIMEOUT_S) as c:
        r = c.get("/v1/health")
    return r.status_code, r.json()


def classify(url: str, **body: Any) -> Any:
    with sync_client(url, timeout_s=TIMEOUT_S) as c:
        return c.post("/v1/classify", json=BODY | body)


def assert_unavailable(r: Any) -> None:
    """A 503 with one JSON message (never a plain-text 500)."""
    assert r.status_code == 503, (r.status_code, r.text)
    assert set(r.json()) == {"error"}


# -- weights integrity: refused before any server starts --------------------------------------
@pytest.mark.parametrize("name", [n for n in available_profiles()
                                  if any(m.weights for m in load_profile(n).models)])
def test_shipped_profiles_pass_the_weights_check(name: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    profile = load_profile(name)
    assert all(m.weights_sha256 for m in profile.models)
    servable_profile(scenario(name), None)
    assert capsys.readouterr().err == ""  # no warning: every model has its digest


@pytest.mark.parametrize(("damage", "drop_digests", "says"), [
    (flip_a_byte, False, "sha256"),
    (truncate, False, "sha256"),
    (truncate, True, "not a valid safetensors file"),
])
def test_zoosim_serve_refuses_corrupt_weights_with_one_line(
        tmp_path: Path, damage: Callable[[Path], None], drop_digests: bool, says: str) -> None:
    profile = copy_profile(tmp_path, drop_digests=drop_digests)
    damage(tmp_path / "mnist5k-cpu" / "lenet5.safetensors")
    r = subprocess.run([sys.executable, "-m", "sim", "serve", "--zoo", str(profile),
                        "--port", "0"], cwd=REPO, capture_output=True, text=True,
                       timeout=DEADLINE_S)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert says in lines[0] and "lenet5" in lines[0]


def test_a_profile_without_digests_serves_with_one_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = copy_profile(tmp_path, drop_digests=True)
    path, prof = servable_profile(scenario(profile), None)
    assert path == profile and all(m.weights_sha256 is None for m in prof.models)
    servable_profile(scenario(profile), None)  # warned once per profile and process
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "unchecked" in err[0]


def test_digest_mismatch_is_refused_by_every_loader(tmp_path: Path) -> None:
    from attacks.victim import VictimZoo
    from zoo_profiles.models import build_model
    from zoo_profiles.profiler import load_weights

    profile = copy_profile(tmp_path)
    flip_a_byte(tmp_path / "mnist5k-cpu" / "logreg.safetensors")
    spec = load_profile(profile).model("logreg")
    with pytest.raises(UserError, match="sha256"):
        load_weights(build_model("logreg"), tmp_path / "mnist5k-cpu" / "logreg.safetensors",
                     sha256=spec.weights_sha256)
    with pytest.raises(UserError, match="sha256"):
        VictimZoo(profile)


# -- worker supervision ----------------------------------------------------------------------
def gated_worker(gate: str, *args: Any) -> None:
    """A worker process that waits for the file ``gate`` before it starts: holds a restarted
    worker down for as long as the test needs (picklable, for spawn)."""
    from serve.procexec import _worker_main

    while not os.path.exists(gate):
        time.sleep(0.05)
    _worker_main(*args)


def test_a_killed_worker_is_answered_503_reported_and_restarted(tmp_path: Path) -> None:
    with ServerThread(scenario(), timeout_s=DEADLINE_S) as s:
        ex = s.live.executor
        assert isinstance(ex, ProcessExecutor)
        assert classify(s.url).status_code == 200
        assert health(s.url) == (200, {"status": "ok", "pending": 0, "workers": [
            {"id": 0, "alive": True, "restarts": 0}]})
        gate = tmp_path / "gate"
        ex.target = partial(gated_worker, str(gate))  # the restarted one waits for the gate
        pid = ex.procs[0].pid
        os.kill(pid, signal.SIGSTOP)  # a batch sent now stays in flight
        wait_for(lambda: stopped(pid), "the worker to stop")
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(classify, s.url)
            wait_for(lambda: len(ex.waiting[0]) > 0, "a batch in flight on the worker")
            os.kill(pid, signal.SIGKILL)
            r = in_flight.result(TIMEOUT_S)
        assert_unavailable(r)
        assert r.headers["Retry-After"] == "1"
        wait_for(lambda: health(s.url)[0] == 503, "health to say degraded")
        code, h = health(s.url)
        assert code == 503 and h["status"] == "degraded" and h["workers"][0]["alive"] is False
        for _ in range(3):  # while it is down, requests fail fast (no hang)
            r = classify(s.url)
            assert_unavailable(r)
            assert "Retry-After" in r.headers
        gate.touch()
        wait_for(lambda: health(s.url)[0] == 200, "health to say ok again")
        _, h = health(s.url)
        assert h["workers"] == [{"id": 0, "alive": True, "restarts": 1}]
        assert ex.procs[0].pid != pid
        codes = [classify(s.url, accuracy=a).status_code for a in (0, 95, 99)]
        assert codes == [200, 200, 200]


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_weights_corrupted_after_start_fail_their_model_only(tmp_path: Path,
                                                             executor: str) -> None:
    """A model loaded on demand whose file broke after the start-up check: its request gets
    a 503 at once (not a hang), the worker lives on and serves the other models, and a
    repaired file serves again without a restart."""
    profile = copy_profile(tmp_path)
    weights = tmp_path / "mnist5k-cpu" / "lenet5.safetensors"
    good = weights.read_bytes()
    sc = scenario(profile, preload="none", api={"model_api": True, "executor": executor})
    with ServerThread(sc, timeout_s=DEADLINE_S) as s:
        flip_a_byte(weights)
        assert_unavailable(classify(s.url, model="lenet5"))
        assert classify(s.url, model="logreg").status_code == 200
        assert_unavailable(classify(s.url, model="lenet5"))  # still corrupt: still refused
        code, h = health(s.url)
        assert code == 200 and h["workers"] == [{"id": 0, "alive": True, "restarts": 0}]
        weights.write_bytes(good)
        assert classify(s.url, model="lenet5").status_code == 200
        if isinstance(s.live.executor, ProcessExecutor):
            assert s.live.executor.restarts == [0]
