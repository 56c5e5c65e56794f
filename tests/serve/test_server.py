"""The live server: serves real answers, batches, rejects bad input with 4xx, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from attacks.victim import VictimZoo
from serve.auth import digest, new_key
from serve.client import async_client, fetch_server_records, sync_client
from serve.config import ServeScenario
from serve.protocol import encode_inputs
from serve.server import ServerThread
from tests.helpers import REPO
from zoo_profiles.datasets import load_dataset


def scenario(**api: Any) -> ServeScenario:
    return ServeScenario.model_validate({
        "zoo": {"profile": "mnist5k-cpu"}, "policy": {"type": "pareto"},
        "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 2, "preload": "all"},
        "api": {"port": 0, "records": True, **api}})


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(scenario(max_inputs=16)) as s:
        yield s


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    x: np.ndarray = load_dataset("mnist5k").test.x[:32]
    return x


@pytest.fixture(scope="module")
def victim() -> VictimZoo:
    return VictimZoo("mnist5k-cpu")


def records(server: ServerThread) -> pd.DataFrame:
    df = fetch_server_records(server.url, server.admin_token)
    assert df is not None
    return df


def test_answers_are_the_selected_models_own(server: ServerThread, images: np.ndarray,
                                             victim: VictimZoo) -> None:
    with sync_client(server.url) as c:
        r = c.post("/v1/classify", json={"inputs": encode_inputs(images[:5]),
                                         "accuracy": 97.5, "latency_ms": 1000})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "labels", "probabilities"}  # nothing names the model
    rec = records(server).set_index("id").loc[body["id"]]
    m = victim.index(rec["model"])
    assert victim.accuracies[m] >= 97.5
    np.testing.assert_allclose(body["probabilities"], victim.probabilities(m, images[:5]),
                               atol=1e-5)
    assert body["labels"] == victim.predictions(m, images[:5]).tolist()


def test_nested_list_inputs_and_a_single_input(server: ServerThread,
                                               images: np.ndarray) -> None:
    with sync_client(server.url) as c:
        one = c.post("/v1/classify", json={"inputs": images[0].tolist(), "accuracy": 0,
                                           "latency_ms": 100})
        two = c.post("/v1/classify", json={"inputs": images[:2].tolist(), "accuracy": 0,
                                           "latency_ms": 100})
    assert one.status_code == two.status_code == 200
    assert len(one.json()["labels"]) == 1 and len(two.json()["labels"]) == 2


def test_concurrent_requests_are_batched_and_answered_each_their_own(
        server: ServerThread, images: np.ndarray, victim: VictimZoo) -> None:
    async def burst() -> list[dict[str, Any]]:
        async with async_client(server.url) as c:
            rs = await asyncio.gather(*[
                c.post("/v1/classify", json={"inputs": encode_inputs(images[i:i + 1]),
                                             "accuracy": 0, "latency_ms": 100})
                for i in range(24)])
        return [r.json() for r in rs]

    answers = asyncio.run(burst())
    df = records(server).set_index("id").loc[[a["id"] for a in answers]]
    assert df["batch_size"].max() > 1                    # dynamic batching happened
    assert (df["batch_size"] <= 8).all()
    for i, (a, model) in enumerate(zip(answers, df["model"], strict=True)):
        assert a["labels"] == victim.predictions(victim.index(model), images[i:i + 1]).tolist()


BAD = [
    (b"{not json", 400, "malformed JSON"),
    (b'{"inputs": [1, 2], "accuracy": 90, "latency_ms": 5}', 422, "expected shape"),
    (b'{"inputs": [[["a"]]], "accuracy": 90, "latency_ms": 5}', 422, "expected numbers"),
    (json.dumps({"inputs": {"dtype": "int8", "shape": [1, 1, 28, 28], "data": ""}}
                | {"accuracy": 90, "latency_ms": 5}).encode(), 422, "inputs.dtype"),
    (json.dumps({"inputs": {"dtype": "float32", "shape": [1, 1, 28, 28], "data": "AAAA"},
                 "accuracy": 90, "latency_ms": 5}).encode(), 422, "bytes"),
    (b'{"inputs": [], "accuracy": 101, "latency_ms": 5}', 422, "accuracy"),
    (b'{"inputs": [], "accuracy": "high", "latency_ms": 5}', 422, "accuracy"),
    (b'{"inputs": [], "accuracy": 90, "latency_ms": -1}', 422, "latency_ms"),
    (b'{"inputs": [], "accuracy": 90, "latency_ms": 1e9}', 422, "latency_ms: at most"),
    (b'{"inputs": [], "accuracy": 90, "latncy_ms": 5}', 422, "latncy_ms"),
    (b'{"inputs": [], "accuracy": 90, "latency_ms": 5, "model": "logreg"}', 422, "model"),
    (json.dumps({"inputs": np.full((1, 1, 28, 28), 0.5).tolist(), "accuracy": 90,
                 "latency_ms": 5}).replace("0.5", "NaN", 1).encode(), 422, "finite"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD)
def test_bad_requests_get_4xx_with_a_clear_message(server: ServerThread, images: np.ndarray,
                                                   body: bytes, status: int, says: str) -> None:
    with sync_client(server.url) as c:
        r = c.post("/v1/classify", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert says in r.json()["error"]
        ok = c.post("/v1/classify", json={"inputs": encode_inputs(images[:1]), "accuracy": 90,
                                          "latency_ms": 50})
        assert ok.status_code == 200  # the server keeps serving


def test_oversized_batch_is_413(server: ServerThread) -> None:
    with sync_client(server.url) as c:
        r = c.post("/v1/classify", json={"inputs": encode_inputs(np.zeros((17, 1, 28, 28))),
                                         "accuracy": 90, "latency_ms": 50})
    assert r.status_code == 413 and "at most 16" in r.json()["error"]


def test_info_and_health(server: ServerThread) -> None:
    with sync_client(server.url) as c:
        info = c.get("/v1/info").json()
        assert c.get("/v1/health").json()["status"] == "ok"
    assert info["input_shape"] == [1, 28, 28] and info["max_inputs"] == 16
    assert not info["model_api"]


def test_rate_limit_per_client_and_labels_only_answers(images: np.ndarray) -> None:
    body = {"inputs": encode_inputs(images[:1]), "accuracy": 0, "latency_ms": 100}
    key = {t: new_key() for t in "ab"}
    a, b = ({"Authorization": f"Bearer {key[t]}"} for t in "ab")
    with ServerThread(scenario(rate_limit_rps=0.2, rate_burst=3, outputs="labels",
                               records=False, keys={t: digest(k) for t, k in key.items()})
                      ) as s, sync_client(s.url) as c:
        codes = [c.post("/v1/classify", json=body, headers=a).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        refused = c.post("/v1/classify", json=body, headers=a)
        assert "Retry-After" in refused.headers and "rate limit" in refused.json()["error"]
        other = c.post("/v1/classify", json=body, headers=b)
        assert other.status_code == 200
        assert "probabilities" not in other.json()             # labels-only server
        admin = {"Authorization": f"Bearer {s.admin_token}"}
        assert c.get("/admin/records", headers=admin).status_code == 404  # off by default
        time.sleep(5.1)  # a token refills in 5 s
        assert c.post("/v1/classify", json=body, headers=a).status_code == 200


def test_spec_noise_and_output_defenses_act_live(images: np.ndarray) -> None:
    sc = scenario()
    sc = ServeScenario.model_validate(sc.model_dump() | {
        "defense": {"type": "chain", "defenses": [
            {"type": "gaussian", "accuracy_sd": 5.0},
            {"type": "rounding", "decimals": 1}]}})
    with ServerThread(sc) as s, sync_client(s.url) as c:
        answers = [c.post("/v1/classify", json={"inputs": encode_inputs(images[:2]),
                                                "accuracy": 95, "latency_ms": 100}).json()
                   for _ in range(20)]
        models = records(s)["model"]
    probs = np.asarray([a["probabilities"] for a in answers])
    np.testing.assert_allclose(probs, np.round(probs, 1), atol=1e-6)   # rounded outputs
    assert models.nunique() > 1               # noisy specs reach more than one model


def test_admission_rejections_are_429_marked_rejected_and_recorded(images: np.ndarray) -> None:
    sc = ServeScenario.model_validate(scenario().model_dump() | {
        "defense": [{"type": "rate_limit", "rate_rps": 0.01, "burst": 2}]})
    body = {"inputs": encode_inputs(images[:2]), "accuracy": 90, "latency_ms": 100}
    with ServerThread(sc) as s, sync_client(s.url) as c:
        first, second = (c.post("/v1/classify", json=body) for _ in range(2))
        df = records(s)
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["rejected"] is True
    assert df["rejected"].tolist() == [False, True] and pd.isna(df["model"].iloc[1])


def test_zoosim_serve_starts_answers_and_stops_cleanly_on_sigterm(
        images: np.ndarray) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sim", "serve", "--port", "0",
                             "--workers", "1"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[-1].strip()
        with sync_client(url) as c:
            r = c.post("/v1/classify", json={"inputs": encode_inputs(images[:1]),
                                             "accuracy": 90, "latency_ms": 100})
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "says"), [
    (["--zoo", "cifar10-published"], "without weights"),
    (["--policy", "fastest"], "policy"),
    (["--port", "70000"], "port"),
    (["--set", "api.outputs=logits"], "outputs"),
])
def test_zoosim_serve_bad_config_exits_2(args: list[str], says: str) -> None:
    r = subprocess.run([sys.executable, "-m", "sim", "serve", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_serve_help_names_real_keys() -> None:
    """The help's examples work: workers are processes by default and the noise key is
    accuracy_sd (the help once said threads and defense.sd)."""
    from click.testing import CliRunner

    from serve.cli import serve
    from serve.config import ServeScenario

    text = CliRunner().invoke(serve, ["--help"], terminal_width=200).output
    assert "processes by default" in text and "defense.accuracy_sd=2" in text
    assert "executor" in ServeScenario.model_fields["api"].annotation.model_fields  # type: ignore[union-attr]
