"""The attacker against a live server (``zoosim attack CONFIG --target URL``; PSML §4).

The strategies and the fingerprinting algorithm run unchanged, as SimPy processes on a
:class:`~sim.clock.WallClockEnvironment` driven by an asyncio loop; the agent reaches the
server through :class:`HttpLink`: every request carries the real inputs (probe inputs of the
pool; extraction rows, pixel shifts applied) to ``POST /v1/classify`` from an asyncio task,
and the answer is delivered into the SimPy world with ``env.inject``. The server's answers
*are* the observations: probe answers identify the serving model, extraction answers are
kept for training (no forward pass of the attacker's own). The latency seen is the wall time
from send to answer.

Ground truth for scoring (identification accuracy, trigger consistency, ``served_by``) is read
after the run from ``GET /admin/records``, joined on the response id; a server without records
leaves those scores None. Benign tenants of the scenario are ignored (a separate load
generator makes benign load); ``attacker.start_s`` is a wall-clock delay.

HTTP errors: 429 (rate limit) and 503 (overload) are retried after ``Retry-After`` seconds (at
most :data:`MAX_RETRIES` times per request, counted in attack.json's ``live.retries``); any
other error status, an unreachable server or a timeout ends the attack with a
:class:`~sim.errors.UserError` naming the request and the server's message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from attacks.agent import (
    FINGERPRINT_PHASES,
    AttackerAgent,
    Extraction,
    Payload,
    identity_names,
)
from attacks.config import AttackerConfig, AttackScenario
from attacks.inputs import shifted
from attacks.report import AttackReport, LiveReport
from attacks.responders import Responder
from attacks.run import (
    Victim,
    attack_report,
    on_one_torch_thread,
    prepare_victim,
    resolve_target,
)
from attacks.strategies import STRATEGIES, Plan
from serve.auth import Credentials, require_keys
from sim.build import zoo_tables
from sim.clock import WallClockEnvironment
from sim.errors import UserError
from sim.plugins import Context
from sim.profiles import load_profile
from sim.request import Request
from sim.rng import SeedTree
from sim.zoo import Zoo

if TYPE_CHECKING:
    import httpx
    import pandas as pd

MAX_RETRIES = 30
"""429/503 answers retried per HTTP request before giving up."""
RETRYABLE = (429, 503)


@dataclass
class Call:
    """One logical request of the attacker over HTTP (split into several HTTP requests when
    it carries more inputs than the server's ``max_inputs``)."""

    req: Request
    phase: str
    n_extract: int
    send_s: float = float("nan")
    answer_s: float = float("nan")
    server_ids: list[int] = field(default_factory=list)
    retries: int = 0
    answers: np.ndarray | None = None
    """Rows (inputs, classes): extraction rows first, then the probes."""
    model_name: str | None = None

    @property
    def latency_ms(self) -> float:
        return (self.answer_s - self.send_s) * 1000


class HttpLink:
    """The agent's link to a live server: real inputs out, real answers in."""

    def __init__(self, env: WallClockEnvironment, zoo: Zoo, client: httpx.AsyncClient,
                 pool_x: np.ndarray, responder: Responder, info: dict[str, Any],
                 labels_only: bool, on_error: Callable[[BaseException], None],
                 identities: int = 1, credentials: Credentials | None = None) -> None:
        self.env: simpy.Environment = env
        self.identities = identity_names(identities)
        """The ``X-Client-Id`` values it sends in turn (tenant names in the server's records)."""
        self.credentials = credentials or Credentials()
        """Keys, one per identity where the server wants keys."""
        self.wall = env
        self.zoo = zoo
        self.client = client
        self.pool_x = pool_x
        self.responder = responder
        self.max_inputs = int(info["max_inputs"])
        self.max_latency_ms = float(info["latency_range_ms"][1])
        self.classes = int(info["classes"])
        self.labels_only = labels_only
        self.on_error = on_error
        self.calls: list[Call] = []
        self._by_id: dict[int, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.http_requests = 0
        self.retries = 0

    # -- Link ------------------------------------------------------------------------------
    def submit(self, accuracy: float, latency_ms: float, payload: Payload, model: int,
               on_done: Callable[[Request], None]) -> Request:
        size = max(len(payload.extract) + len(payload.probes), 1)
        req = Request(len(self.calls), len(self.calls) % len(self.identities), self.env.now,
                      accuracy, min(latency_ms, self.max_latency_ms), payload=payload,
                      size=size, model=model)
        call = Call(req, payload.phase, len(payload.extract))
        self.calls.append(call)
        self._by_id[req.id] = call
        task = asyncio.get_running_loop().create_task(self._run(call, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return req

    def probe_answers(self, req: Request) -> np.ndarray:
        call = self._by_id[req.id]
        assert call.answers is not None
        return call.answers[call.n_extract:]

    def latency_ms(self, req: Request) -> float:
        return self._by_id[req.id].latency_ms

    def offline_answers(self, model: int, probes: np.ndarray) -> np.ndarray:
        return self.responder.answers(model, probes)

    def extraction_answers(self, req: Request) -> np.ndarray:
        """The server's answers on the request's extraction rows."""
        call = self._by_id[req.id]
        assert call.answers is not None
        return call.answers[:call.n_extract]

    # -- HTTP ------------------------------------------------------------------------------
    async def _run(self, call: Call, on_done: Callable[[Request], None]) -> None:
        try:
            req = call.req
            payload: Payload = req.payload
            x = np.concatenate([shifted(self.pool_x, payload.extract),
                                self.pool_x[payload.probes]])
            body: dict[str, Any] = {"accuracy": float(req.acc_req),
                                    "latency_ms": float(req.lat_req_ms)}
            if req.model >= 0:
                body["model"] = self.zoo.names[req.model]
            call.send_s = self.wall.wall()
            try:
                parts = await asyncio.gather(*(self._post(call, x[i:i + self.max_inputs], body)
                                               for i in range(0, len(x), self.max_inputs)))
            except Refused:   # as in simulation: the agent counts it and sends it again
                req.rejected = True
            else:
                call.answers = np.concatenate(parts)
            call.answer_s = self.wall.wall()
            self.wall.inject(lambda: on_done(req))
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # surfaced by run_live_attack
            self.on_error(e)

    async def _post(self, call: Call, x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
        import httpx

        from serve.protocol import CLIENT_HEADER, encode_inputs

        body = {"inputs": encode_inputs(x), **spec}
        for attempt in range(MAX_RETRIES + 1):
            self.http_requests += 1
            try:
                r = await self.client.post("/v1/classify", json=body,
                                           headers={
                                               CLIENT_HEADER: self.identities[call.req.tenant],
                                               **self.credentials.headers(call.req.tenant)})
            except httpx.HTTPError as e:
                raise UserError(f"live server {self.client.base_url}: {call.phase} request "
                                f"failed ({type(e).__name__}: {e})") from None
            if r.status_code == 429 and _refused(r):
                raise Refused(_message(r))
            if r.status_code in RETRYABLE and attempt < MAX_RETRIES:
                call.retries += 1
                self.retries += 1
                await asyncio.sleep(_retry_after(r))
                continue
            if r.status_code != 200:
                raise UserError(f"live server {self.client.base_url} answered "
                                f"{r.status_code} to a {call.phase} request: {_message(r)}")
            out = r.json()
            call.server_ids.append(int(out["id"]))
            if "probabilities" in out and not self.labels_only:
                return np.asarray(out["probabilities"], dtype=np.float32)
            labels = np.asarray(out["labels"], dtype=np.int64)
            return np.eye(self.classes, dtype=np.float32)[labels]   # top-1 labels, one-hot
        raise AssertionError("unreachable")

    async def drain(self) -> None:
        """Wait for every request still in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # -- ground truth ----------------------------------------------------------------------
    def fill_models(self, records: pd.DataFrame) -> None:
        """Set ``request.model`` from the server's records (joined on the response id)."""
        names = dict(zip(records["id"].astype(int), records["model"].astype(str), strict=True))
        for call in self.calls:
            got = [names.get(i) for i in call.server_ids]
            if not got or got[0] is None:
                continue
            name = got[0]
            if name not in self.zoo.index:
                raise UserError(f"the live server serves model {name!r}, which the config's zoo "
                                f"{self.zoo.profile.name!r} does not have: attack the server "
                                "with the zoo it serves (zoo.profile)")
            call.model_name = name
            call.req.model = self.zoo.index[name]

    def frame(self) -> pd.DataFrame:
        """requests.parquet: the attacker's own requests, times in wall seconds since start."""
        import pandas as pd

        c = self.calls
        return pd.DataFrame({
            "id": np.arange(len(c), dtype=np.int64),
            "phase": pd.Categorical([x.phase for x in c],
                                    categories=[*FINGERPRINT_PHASES, "extraction"]),
            "acc_req": [x.req.acc_req for x in c],
            "lat_req_ms": [x.req.lat_req_ms for x in c],
            "extract_inputs": [x.n_extract for x in c],
            "probe_inputs": [x.req.size - x.n_extract for x in c],
            "send_s": [x.send_s for x in c],
            "answer_s": [x.answer_s for x in c],
            "latency_ms": [x.latency_ms for x in c],
            "server_id": [x.server_ids[0] if x.server_ids else -1 for x in c],
            "http_requests": [len(x.server_ids) for x in c],
            "retries": [x.retries for x in c],
            "model": pd.Categorical([x.model_name or (self.zoo.names[x.req.model]
                                                      if x.req.model >= 0 else None)
                                     for x in c], categories=self.zoo.names),
        })


class Refused(Exception):
    """The server's admission defense turned the request away (HTTP 429 marked ``rejected``;
    a plain 429 is an overload, retried after ``Retry-After``)."""


def _refused(r: httpx.Response) -> bool:
    try:
        return bool(r.json().get("rejected", False))
    except ValueError:
        return False


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(float(r.headers.get("Retry-After", "1")), 0.01)
    except ValueError:
        return 1.0


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text[:200]


LiveRun = tuple[AttackerAgent, Extraction, HttpLink, AttackerConfig]
"""What the live run leaves for scoring: agent, extraction, link, and the attacker config as
run (latency range clamped to the server's)."""


@dataclass
class LiveAttackResult:
    """attack.json's content and the attacker's own requests."""

    attack: AttackReport
    requests: pd.DataFrame

    @cached_property
    def report(self) -> dict[str, Any]:
        """attack.json's content, as written (:meth:`AttackReport.to_json`)."""
        return self.attack.to_json()


def check_server(info: dict[str, Any], cfg: AttackerConfig, victim: Victim, url: str) -> None:
    """The server must serve inputs of the config's zoo and answer what the attacker needs."""
    assert victim.zoo is not None
    shape, classes = tuple(info["input_shape"]), int(info["classes"])
    if shape != tuple(victim.zoo.in_shape) or classes != victim.zoo.num_classes:
        raise UserError(f"{url} serves inputs of shape {shape} with {classes} classes, but zoo "
                        f"{victim.zoo.profile.name!r} (zoo.profile) takes "
                        f"{tuple(victim.zoo.in_shape)} with {victim.zoo.num_classes}")
    if info["outputs"] == "labels" and cfg.outputs == "probabilities":
        raise UserError(f"{url} answers with top-1 labels only; set attacker.outputs: labels")
    if STRATEGIES.get(cfg.strategy.type).names_model and not info.get("model_api"):
        raise UserError(f"the {cfg.strategy.type} strategy names the model in each request, "
                        f"but {url} selects the model itself (start it with --model-api)")
    riders = cfg.fingerprint.max_probes if cfg.verify else 0
    if cfg.extract and cfg.inputs_per_request + riders > int(info["max_inputs"]):
        raise UserError(f"attacker.inputs_per_request ({cfg.inputs_per_request}"
                        + (f" + {riders} verification probes" if riders else "")
                        + f") exceeds the {info['max_inputs']} inputs per request {url} takes")


@on_one_torch_thread
def run_live_attack(scenario: AttackScenario, url: str, base_dir: Path | None = None,
                    timeout_s: float = 60.0, credentials: Credentials | None = None
                    ) -> LiveAttackResult:
    """Run the attack against the live server at ``url``, train the surrogate, score it."""
    cfg = scenario.attacker
    zoo = zoo_tables(scenario, load_profile(scenario.zoo.profile, base_dir))
    target, rank = resolve_target(cfg.target, zoo)
    import httpx

    from serve.client import check_admin_token, fetch_server_records, server_info

    info = server_info(url, timeout_s=10.0)
    creds = credentials or Credentials.resolve()
    require_keys(info, creds, url, cfg.identities)
    check_admin_token(url, creds.admin_token)
    seeds = SeedTree(scenario.seed)
    rng = seeds.generator("attacker")
    victim = prepare_victim(scenario, len(zoo), base_dir, rng, live=True)
    check_server(info, cfg, victim, url)
    plan = Plan(target, rank)
    started = time.perf_counter()
    agent, ext, link, cfg = asyncio.run(
        _attack(scenario, url, info, zoo, victim, plan, rng, seeds, timeout_s, creds))
    wall = time.perf_counter() - started
    try:
        server = fetch_server_records(url, creds.admin_token)
    except httpx.HTTPError as e:
        raise UserError(f"live server {url}: GET /admin/records failed "
                        f"({type(e).__name__}: {e})") from None
    records = server is not None
    if server is not None:
        link.fill_models(server)

    def answers(kept: list[tuple[Request, np.ndarray]], x: np.ndarray) -> np.ndarray:
        return np.concatenate([link.extraction_answers(req) for req, _ in kept])

    report = attack_report(scenario.model_copy(update={"attacker": cfg}), zoo, plan, agent,
                           ext, victim, answers)
    report.live = LiveReport(url=url, wall_s=round(wall, 3), records=records,
                             http_requests=link.http_requests, retries=link.retries)
    return LiveAttackResult(report, link.frame())


async def _attack(scenario: AttackScenario, url: str, info: dict[str, Any], zoo: Zoo,
                  victim: Victim, plan: Plan, rng: np.random.Generator, seeds: SeedTree,
                  timeout_s: float, credentials: Credentials) -> LiveRun:
    from serve.client import async_client

    loop = asyncio.get_running_loop()
    cfg = scenario.attacker
    async with async_client(url, timeout_s=timeout_s) as client:
        lo, hi = cfg.fingerprint.latency_range_ms
        max_lat = float(info["latency_range_ms"][1])
        if hi > max_lat:   # the loosest latency target the server accepts
            fp = cfg.fingerprint.model_copy(update={"latency_range_ms": (min(lo, max_lat),
                                                                         max_lat)})
            cfg = cfg.model_copy(update={"fingerprint": fp})
        assert victim.pool is not None
        env = WallClockEnvironment(loop)
        done: asyncio.Future[None] = loop.create_future()

        def fail(e: BaseException) -> None:
            if not done.done():
                done.set_exception(e)

        link = HttpLink(env, zoo, client, victim.pool.x, victim.responder, info,
                        cfg.outputs == "labels", fail, cfg.identities, credentials)
        agent = AttackerAgent(link, cfg, victim.responder)
        ext = Extraction(agent, victim.pool_size, seeds.generator("attacker", "inputs"))
        strategy = STRATEGIES.build(cfg.strategy, Context(
            zoo=zoo, clock=env, seeds=seeds, stream=("attacker",), generator=rng))

        def attacker() -> Any:
            try:
                yield from strategy.run(agent, ext, plan, victim.candidates)
            except Exception as e:  # handed to the awaiting coroutine
                fail(e)
                return
            if not done.done():
                done.set_result(None)

        try:
            env.inject(lambda: env.process(attacker()))
            while not done.done():
                await asyncio.wait([done], timeout=0.5)
                if env.error is not None:
                    fail(env.error)
            done.result()
            await link.drain()
        finally:
            link.cancel()
            env.close()
    return agent, ext, link, cfg
