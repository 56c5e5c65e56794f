"""The HTTP API of the live server (FastAPI on uvicorn; contract in :mod:`serve.protocol`).

Routes: ``POST /v1/classify`` (answer inputs at a requested accuracy and latency),
``GET /v1/info`` (what the API accepts), ``GET /v1/health``, and, only with
``api.records``, ``GET /admin/records`` (ground truth for experiments). Every bad request gets
a 4xx answer with one message naming the field, and the server keeps serving: 400 malformed
JSON, 413 body too large or too many inputs, 422 wrong field/shape/dtype/range, 429 over the
client's rate limit, 503 overloaded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from serve.config import ServeScenario
from serve.live import LiveServer, Rejected
from serve.protocol import CLIENT_HEADER, BadInput, ClassifyBody, decode_inputs
from serve.ratelimit import RateLimiter
from sim.clock import freeze_heap
from sim.config_errors import describe_validation_error


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(scenario: ServeScenario, base_dir: Path | None = None,
               on_ready: Any = None) -> FastAPI:
    """The ASGI app; the zoo is loaded at start-up (``on_ready(server)`` runs after)."""
    api = scenario.api
    limiter = (RateLimiter(api.rate_limit_rps, api.rate_burst or max(1.0, api.rate_limit_rps))
               if api.rate_limit_rps is not None else None)
    state: dict[str, LiveServer] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import asyncio

        server = LiveServer(scenario, base_dir, asyncio.get_running_loop())
        state["server"] = server
        freeze_heap()
        if on_ready is not None:
            on_ready(server)
        try:
            yield
        finally:
            server.close()

    app = FastAPI(title="zoosim live model-zoo server", lifespan=lifespan,
                  docs_url=None, redoc_url=None)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pending": state["server"].pending()}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        s = state["server"]
        return {"input_shape": list(s.in_shape), "classes": s.num_classes,
                "outputs": api.outputs, "max_inputs": api.max_inputs,
                "accuracy_range": [0.0, 100.0], "latency_range_ms": [0.0, api.max_latency_ms],
                "model_api": api.model_api,
                "rate_limit_rps": api.rate_limit_rps}

    @app.post("/v1/classify")
    async def classify(request: Request) -> Response:
        server = state["server"]
        client = request.headers.get(CLIENT_HEADER) or (
            request.client.host if request.client else "unknown")
        if limiter is not None:
            wait = limiter.admit(client, server.env.loop.time())
            if wait > 0:
                return _error(429, f"rate limit: at most {api.rate_limit_rps:g} requests/s per "
                                   f"client; retry in {wait:.3f} s",
                              {"Retry-After": str(max(1, round(wait)))})
        body = await request.body()
        if len(body) > api.max_body_bytes:
            return _error(413, f"body of {len(body)} bytes; at most {api.max_body_bytes}")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return _error(400, f"malformed JSON: {e}")
        try:
            req = ClassifyBody.model_validate(data)
        except ValidationError as e:
            return _error(422, describe_validation_error(e, data, ClassifyBody))
        if req.latency_ms > api.max_latency_ms:
            return _error(422, f"latency_ms: at most {api.max_latency_ms:g}, got "
                               f"{req.latency_ms:g}")
        model = -1
        if req.model is not None:
            if not api.model_api:
                return _error(422, "model: this server selects the model itself; naming one "
                                   "needs a server started with the model API")
            model = server.zoo.index.get(req.model, -1)
            if model < 0:
                return _error(422, f"model: no model {req.model!r} in this zoo")
        try:
            x = decode_inputs(req.inputs, server.in_shape, api.max_inputs)
        except BadInput as e:
            return _error(e.status, str(e))
        if server.pending() >= api.max_pending:
            return _error(503, f"overloaded: {server.pending()} requests pending", {
                "Retry-After": "1"})
        try:
            answer = await server.classify(x, req.accuracy, req.latency_ms, client, model)
        except Rejected as e:   # the admission defense's decision, not an overload
            return JSONResponse({"error": str(e), "rejected": True}, status_code=429)
        probs = answer.probabilities
        out: dict[str, Any] = {"id": answer.id,
                               "labels": np.argmax(probs, axis=1).tolist()}
        if api.outputs == "probabilities":
            out["probabilities"] = probs.tolist()
        return Response(json.dumps(out), media_type="application/json")

    @app.get("/admin/records")
    async def records() -> Response:
        if not api.records:
            return _error(404, "records are off (start the server with api.records: true)")
        df = state["server"].records()
        df = df.astype({c: str for c in ("tenant", "model")})
        return Response(df.to_json(orient="split", index=False), media_type="application/json")

    return app
