"""The HTTP API of the live server (FastAPI on uvicorn; contract in :mod:`serve.protocol`).

Routes: ``POST /v1/classify`` (answer inputs at a requested accuracy and latency),
``GET /v1/info`` (what the API accepts), ``GET /v1/health``, and, only with ``api.records``,
``GET /admin/records`` (ground truth for experiments; admin token only). Every bad request gets
a 4xx answer with one JSON message naming the field, and the server keeps serving: 400
malformed JSON, 401 no or unknown key, 403 not the admin token, 413 body too large or too many
inputs, 422 wrong field/shape/dtype/range, 429 over the client's rate limit, 503 overloaded or
a server fault. Limits on connections, heads, bodies and slow clients are enforced while
reading (:mod:`serve.http`); identities are in :mod:`serve.auth`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from serve.auth import MAX_TENANT_CHARS, server_identities
from serve.config import ServeScenario
from serve.live import LiveServer, Rejected, Shed
from serve.procexec import WorkerUnavailable
from serve.protocol import CLIENT_HEADER, BadInput, ClassifyBody, decode_inputs
from serve.ratelimit import RateLimiter
from sim.clock import quiet_gc
from sim.config_errors import describe_validation_error

MAX_RECORDS_PAGE = 10_000
MAX_DIGITS = 40
"""Longest run of digits a number in a body may have (a float32 needs 9 significant digits;
converting a 4,000-digit integer costs the event loop as much as thousands of numbers)."""
LONG_NUMBER = re.compile(rb"\d{%d}" % (MAX_DIGITS + 1))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Invalid(Exception):
    """A request the API refuses: status and one message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_classify(body: bytes, in_shape: tuple[int, ...], max_inputs: int,
                   max_latency_ms: float) -> ClassifyBody:
    """The body, checked but for its inputs (:func:`inputs_of`), or :class:`Invalid`. Its cost
    is bounded by what a valid request may hold: a nested-list body with more numbers than
    ``max_inputs`` inputs have, or a number of more than ``MAX_DIGITS`` digits, is refused
    before it is parsed (both scans run at memory speed), and JSON nested deeper than
    Python's parser goes is a 400, not a crash. (Decoding holds the GIL: on a thread it would
    stall the event loop just the same, so the bound is what keeps the loop responsive.)"""
    numbers = max_inputs * math.prod(in_shape)
    if body.count(b",") > numbers + 16:
        raise Invalid(413, f"inputs: more numbers than {max_inputs} inputs of shape "
                           f"{tuple(in_shape)} hold")
    if LONG_NUMBER.search(body):
        raise Invalid(400, f"a number of more than {MAX_DIGITS} digits")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(400, f"malformed JSON: {e}") from None
    except RecursionError:
        raise Invalid(400, "malformed JSON: nested too deep") from None
    try:
        req = ClassifyBody.model_validate(data)
    except ValidationError as e:
        raise Invalid(422, describe_validation_error(e, data, ClassifyBody)) from None
    if req.latency_ms > max_latency_ms:
        raise Invalid(422, f"latency_ms: at most {max_latency_ms:g}, got {req.latency_ms:g}")
    return req


def inputs_of(req: ClassifyBody, in_shape: tuple[int, ...], max_inputs: int) -> np.ndarray:
    """The request's inputs as ``(n, *in_shape)`` float32, or :class:`Invalid`."""
    try:
        return decode_inputs(req.inputs, in_shape, max_inputs)
    except BadInput as e:
        raise Invalid(e.status, str(e)) from None
    except RecursionError:
        raise Invalid(422, "inputs: nested too deep") from None


def create_app(scenario: ServeScenario, base_dir: Path | None = None,
               on_ready: Any = None) -> FastAPI:
    """The ASGI app; the zoo is loaded at start-up (``on_ready(server)`` runs after).
    ``app.state.identities`` holds its keys and admin token (:mod:`serve.auth`)."""
    api = scenario.api
    keys_file = api.keys_file
    if keys_file is not None and not keys_file.is_absolute() and base_dir is not None:
        keys_file = base_dir / keys_file
    ids = server_identities(api.keys, keys_file, api.admin_token_sha256)
    limiter = (RateLimiter(api.rate_limit_rps, api.rate_burst or max(1.0, api.rate_limit_rps))
               if api.rate_limit_rps is not None else None)
    state: dict[str, LiveServer] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        server = LiveServer(scenario, base_dir, asyncio.get_running_loop())
        state["server"] = server
        quiet_gc()
        if on_ready is not None:
            on_ready(server)
        try:
            yield
        finally:
            server.close()

    app = FastAPI(title="zoosim live model-zoo server", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.identities = ids

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def query_error(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """200 ``ok`` with every worker up; 503 ``degraded`` while one is down (restarting)."""
        h = state["server"].health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        s = state["server"]
        return {"input_shape": list(s.in_shape), "classes": s.num_classes,
                "outputs": api.outputs, "max_inputs": api.max_inputs,
                "accuracy_range": [0.0, 100.0], "latency_range_ms": [0.0, api.max_latency_ms],
                "model_api": api.model_api, "auth": ids.auth,
                "rate_limit_rps": api.rate_limit_rps}

    def identify(request: Request) -> tuple[str, str] | JSONResponse:
        """(client name, rate-limit key): the key's tenant when auth is on; else the
        ``X-Client-Id`` claim (or the peer address) and the peer address."""
        peer = request.client.host if request.client else "unknown"
        if ids.auth:
            tenant = ids.tenant(request.headers.get("authorization"))
            if tenant is None:
                return _error(401, "authorization: send 'Authorization: Bearer KEY' with a "
                                   "tenant key of this server", {"WWW-Authenticate": "Bearer"})
            return tenant, tenant
        claimed = request.headers.get(CLIENT_HEADER)
        if claimed is not None and not 0 < len(claimed) <= MAX_TENANT_CHARS:
            return _error(400, f"{CLIENT_HEADER}: 1-{MAX_TENANT_CHARS} characters, got "
                               f"{len(claimed)}")
        return claimed or peer, peer

    @app.post("/v1/classify")
    async def classify(request: Request) -> Response:
        server = state["server"]
        who = identify(request)
        if isinstance(who, Response):
            return who
        client, limit_key = who
        if limiter is not None:
            wait = limiter.admit(limit_key, server.env.loop.time())
            if wait > 0:
                return _error(429, f"rate limit: at most {api.rate_limit_rps:g} requests/s per "
                                   f"client; retry in {wait:.3f} s",
                              {"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening (refused while reading)
        try:
            req = parse_classify(body, server.in_shape, api.max_inputs, api.max_latency_ms)
        except Invalid as e:
            return _error(e.status, str(e))
        model = -1
        if req.model is not None:
            if not api.model_api:
                return _error(422, "model: this server selects the model itself; naming one "
                                   "needs a server started with the model API")
            model = server.zoo.index.get(req.model, -1)
            if model < 0:
                return _error(422, f"model: no model {req.model[:64]!r} in this zoo")
        try:
            x = inputs_of(req, server.in_shape, api.max_inputs)
        except Invalid as e:
            return _error(e.status, str(e))
        try:
            answer = await server.classify(x, req.accuracy, req.latency_ms, client, model)
        except Shed as e:   # the engine's overload rule (cluster.shedding, api.max_pending)
            return JSONResponse({"error": str(e), "shed": True}, status_code=503,
                                headers={"Retry-After": str(max(1, math.ceil(e.retry_s)))})
        except Rejected as e:   # the admission defense's decision, not an overload
            return JSONResponse({"error": str(e), "rejected": True}, status_code=429)
        except WorkerUnavailable as e:  # its worker died or is restarting: retry soon
            return _error(503, str(e), {"Retry-After": "1"})
        except Exception as e:  # a server fault (a failed batch): not the client's mistake
            return _error(503, f"server fault: {type(e).__name__}: {e}"[:300],
                          {"Retry-After": "1"})
        probs = answer.probabilities
        if not np.isfinite(probs).all():   # broken weights (a profile without digests)
            return _error(503, "server fault: the model answered with non-finite numbers",
                          {"Retry-After": "1"})
        out: dict[str, Any] = {"id": answer.id,
                               "labels": np.argmax(probs, axis=1).tolist()}
        if api.outputs == "probabilities":
            out["probabilities"] = probs.tolist()
        return Response(json.dumps(out), media_type="application/json")

    @app.get("/admin/records")
    async def records(request: Request, after: Annotated[int, Query(ge=-1, le=2**62)] = -1,
                      limit: Annotated[int, Query(ge=1, le=MAX_RECORDS_PAGE)] = MAX_RECORDS_PAGE
                      ) -> Response:
        """Completed requests with ids above ``after``, at most ``limit`` (a page); ``next``
        is the ``after`` of the next page (null: nothing more yet), ``dropped`` how many
        older records the bounded ring no longer holds."""
        if not ids.is_admin(request.headers.get("authorization")):
            return _error(403, "authorization: /admin needs 'Authorization: Bearer "
                               "ADMIN_TOKEN' (the server's admin token)")
        if not api.records:
            return _error(404, "records are off (start the server with api.records: true)")
        df, nxt, dropped = state["server"].records_page(after, limit)
        df = df.astype({c: str for c in ("tenant", "model")})
        page = df.to_json(orient="split", index=False)
        tail = f', "next": {json.dumps(nxt)}, "dropped": {dropped}}}'
        return Response(page[:-1] + tail, media_type="application/json")

    return app
