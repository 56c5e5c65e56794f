"""Overload shedding on the live server: the engine's rule (``cluster.shedding``, and
``api.max_pending``, its alias) answers a shed request 503 with ``Retry-After`` and a JSON body
marked ``shed``, and the records say so. Status codes and counts only: no timing is asserted."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from serve.client import async_client, fetch_server_records, sync_client
from serve.config import ServeScenario
from serve.protocol import encode_inputs
from serve.server import ServerThread
from zoo_profiles.datasets import load_dataset


def scenario(shedding: dict[str, Any], **api: Any) -> ServeScenario:
    return ServeScenario.model_validate({
        "zoo": {"profile": "mnist5k-cpu"}, "policy": {"type": "pareto"},
        "cluster": {"workers": 1, "max_batch": 8, "batch_timeout_ms": 1, "preload": "all",
                    "shedding": shedding},
        "api": {"port": 0, "records": True, **api}})


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    x: np.ndarray = load_dataset("mnist5k").test.x[:8]
    return x


def test_a_request_that_cannot_meet_its_deadline_gets_503_retry_after(
        images: np.ndarray) -> None:
    """A 1 microsecond target is below any model's batch time: the engine's estimate exceeds
    it, so the request is shed at once; a loose target is served."""
    body = {"inputs": encode_inputs(images[:1]), "accuracy": 0}
    with ServerThread(scenario({"deadline": True})) as s, sync_client(s.url) as c:
        shed = c.post("/v1/classify", json=body | {"latency_ms": 0.001})
        ok = c.post("/v1/classify", json=body | {"latency_ms": 1000})
        df = fetch_server_records(s.url, s.admin_token)
    assert shed.status_code == 503, shed.text
    answer = shed.json()
    assert answer["shed"] is True and "overloaded" in answer["error"]
    assert "rejected" not in answer                 # not an admission defense's decision
    assert int(shed.headers["Retry-After"]) >= 1
    assert ok.status_code == 200 and "shed" not in ok.json()
    assert df is not None
    assert df["shed"].tolist() == [True, False]
    assert df["model"].isna().tolist() == [True, False]


def test_api_max_pending_is_the_engine_cap(images: np.ndarray) -> None:
    """``api.max_pending`` sets the engine's cap (the lower of the two wins): a burst against
    a cap of 1 gets only answers and 503s marked shed, as many as the records' shed requests."""
    sc = scenario({}, max_pending=1)
    assert sc.shedding().max_pending == 1 and not sc.shedding().deadline
    assert scenario({"max_pending": 5}, max_pending=50).shedding().max_pending == 5
    assert scenario({}, max_pending=None).shedding().max_pending is None

    async def burst(url: str) -> list[tuple[int, dict[str, Any], str | None]]:
        async with async_client(url) as c:
            rs = await asyncio.gather(*[
                c.post("/v1/classify", json={"inputs": encode_inputs(images[i % 8:i % 8 + 1]),
                                             "accuracy": 99, "latency_ms": 1000})
                for i in range(32)])
        return [(r.status_code, r.json(), r.headers.get("Retry-After")) for r in rs]

    with ServerThread(sc) as s:
        answers = asyncio.run(burst(s.url))
        df = fetch_server_records(s.url, s.admin_token)
    assert df is not None
    codes = [code for code, _, _ in answers]
    assert set(codes) <= {200, 503}
    refused = [(a, retry) for code, a, retry in answers if code == 503]
    assert all(a["shed"] is True and retry is not None and int(retry) >= 1
               for a, retry in refused)
    assert int(df["shed"].sum()) == len(refused) and len(df) == 32
