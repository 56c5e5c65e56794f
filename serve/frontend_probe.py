"""Measure a machine's front-end profile (:mod:`sim.frontend_profile`) on a live server.

The measurement is here; the fit of the costs to it (steps 3-4 below, and step 5's median
pass: the functions they name, with :data:`~serve.frontend_fit.BURSTS`,
:data:`~serve.frontend_fit.PROBE_BATCH_TIMEOUT_MS` and the method's version) is
:mod:`serve.frontend_fit`, the reading of the processes' counters :mod:`serve.proc_cpu`.

Issue 18: the simulator's front-end model needs what a request costs, in CPU, outside the
forward pass, on this machine: for the server's event-loop thread (``ingress``, per batch
``dispatch``, ``egress``, and per wake-up ``setup``), for each worker process (how its
forward passes compare with the profiled ones, and its cost per batch beyond them), and
for the load generator (``client``). They are measured once, by a microbenchmark from
idle and back to back, never at the loads the simulator is then asked to predict:

1. a live server of the scenario (``zoosim serve``, records on, model names accepted and
   batches, larger than any burst, waiting
   :data:`~serve.frontend_fit.PROBE_BATCH_TIMEOUT_MS` to fill: :func:`probe_config`) is sent
   **bursts** of k requests at once, k in :data:`~serve.frontend_fit.BURSTS`, with a pause
   before each so that each starts from idle: k requests for one model (one batch), for k
   models (k batches), or refused after parsing (a latency target above
   ``api.max_latency_ms``: a 422, which costs the ingress and a short answer only), and
   empty bursts (nothing sent: what the measurement itself costs);
2. around each burst the probe reads the CPU time (``/proc/<pid>/task/<tid>/schedstat``,
   nanoseconds) of the server's event-loop thread, of the worker processes and of its own
   thread (the client, a :class:`serve.wire.WireClient` as the load generator uses), how
   long each waited, runnable, for a core (``schedstat``'s second field) and the times
   each went to sleep (``voluntary_ctxt_switches``, kept with the raw bursts); the
   server's records say which batches ran (model, size);
3. the costs, from differences: the slope of a burst's CPU against its size (the others in
   the burst already paid the wake-ups) is, for refused requests, ``ingress``; for requests
   of one batch, ``ingress + egress``; for requests of one batch each, that plus
   ``dispatch`` per batch. Requests in a burst from idle each cost more than back to back
   (13-21 % more, ad hoc; ingress + egress 17 % more in run W's probe:
   docs/results/simcheck.md), and what the saturation point hangs on is the latter: so
   **busy streams**, each :data:`BUSY_REQUESTS` refused requests or the scenario's own
   requests (its tenants' targets, :func:`scenario_targets`, the policy choosing each one's
   model; method version 20) with :data:`BUSY_IN_FLIGHT` in flight (the loop hardly ever
   sleeps, batches fill; ``--in-flight`` and ``--max-batch`` change the count and the probed
   server's largest batch, to study how the hot costs depend on them), give the hot
   ``ingress`` and ``ingress + egress`` (less ``dispatch`` per batch and a hot wake-up's
   ``setup`` each time the loop slept), the slopes only ``dispatch`` (less the loop's
   wake-ups between a burst's batches, which the model charges apart:
   :func:`~serve.frontend_fit.batch_dispatch_ms`, method version 21); busy streams of
   :data:`HEAVY_REQUESTS` for the slowest model (its worker never short of work, sleeping
   only between a batch's answer and the next hand-over) give a worker's forward passes back
   to back (``forward_scale``), and the fit over the bursts (below) how much slower they run
   from idle (``cold_scale``, charged by the cooling curve of the sleep before a batch;
   method version 19). A wake-up's cost comes from a sweep of **steady streams** of refused
   requests, the client pausing 0.25 to 32 ms between an answer and the next request: what
   the server's loop spends in a stream beyond ``ingress``, per wake-up, against how long it
   slept per wake-up (both measured), is ``setup + cold * (1 - exp(-t / cooling))`` (a
   wake-up costs something however short the sleep, and more as the caches go cold), fitted
   by least squares (:func:`~serve.frontend_fit.cooling_fit`). (Lone requests after a pause,
   each after one warm-up request, cost 0.08-0.19 ms more at gaps of 1-2 ms than the same
   gaps in a steady stream: they were paying for the pause.) The simulator's
   :class:`sim.host.Station` charges that to a job that finds its process asleep, so under
   load, when the loop rarely sleeps and then briefly, the CPU per request falls towards the
   hot cost, as it does live. A worker, in one fit (:func:`~serve.frontend_fit.worker_fit`):
   its forward passes from idle against the zoo profile's (the profiler times forward passes
   back to back, alone; live, the larger models run slower, among the front-end's work on
   the same cores), its cost per batch beyond them (batches back to back) and its wake-up
   (what a burst's first batch pays; a probe of a server with several workers wakes several
   for a burst of several models); with the heavy busy streams, ``forward_scale`` is theirs
   and ``cold_scale`` what makes a lone batch (the median forward pass, its cost per batch)
   cost what the fit says; the client's: its slope, and a lone request's remainder over
   :data:`~serve.frontend_fit.CLIENT_WAKEUPS`, split evenly between send and receive (the
   probe cannot tell them apart); the worker's and the client's wake-ups split between
   ``setup`` and ``cold`` in the server's shares;
4. each per-request cost's distribution is single requests' costs scaled to its mean
   (:func:`~serve.frontend_fit.spread_cost`), kept as quantiles. The waits for a core are
   kept with the raw bursts; the profile takes the event loop's wait per wake-up from the
   cooling sweep (:func:`~serve.frontend_fit.loop_wait_ms`), one request at a time, not from
   lone requests from idle: a constant wait per wake-up measured on those made the model
   23-68 % slow with one worker (docs/results/simcheck.md, runs S and U);
5. all of it :data:`PASSES` times over, one pass after the other, and the **median pass**
   kept (:func:`~serve.frontend_fit.median_pass`: by its cost per request and batch). A
   virtual machine's speed is not steady (a shared physical core: docs/results/simcheck.md
   measured a fixed loop at 0.042-0.088 s from one 0.3-s sample to the next, and single
   passes within an hour put ingress + egress at 0.53-0.76 ms); one pass taken in a slow
   spell would make every prediction slow.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serve.frontend_fit import (
    BURSTS,
    PROBE_BATCH_TIMEOUT_MS,
    Burst,
    frontend_profile,
    median_pass,
    pass_cost_ms,
)
from serve.proc_cpu import (
    asleep_per_wakeup,
    process_counters,
    process_waited_ms,
    thread_counters,
    thread_waited_ms,
    waits_diff,
    worker_pids,
)
from sim.errors import UserError
from sim.frontend_profile import FrontendProfile
from sim.profiles import ZooProfile

if TYPE_CHECKING:
    from serve.wire import WireClient

PASSES = 3
"""Whole probes run one after the other, of which the median is kept (step 5 above)."""
GAPS_MS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""The client's pauses between the refused requests of the cooling sweep's streams (the
server's loop sleeps longer: the client's own work, and the request on the wire)."""
STREAM_WARMUP = 4
"""Requests of a sweep's stream sent before it is measured: it starts after a pause, and a
stream's first requests pay for that pause (a single warm-up request left a stream of 1-ms
gaps 0.2 ms a request dearer than its steady state)."""
STREAM_REQUESTS = 16
"""Requests of a sweep's stream measured together (one sample)."""
ROUNDS_PER_STREAM = 3
"""Rounds of bursts per round of the cooling sweep (one stream at each gap)."""
BUSY_IN_FLIGHT = 64
"""Requests a busy stream keeps in flight (the loop never idles; batches fill)."""
MAX_IN_FLIGHT = 1024
"""The most requests a busy stream may keep in flight (``--in-flight``): each is a
connection, and a process may open only so many files."""
MIN_PER_SENDER = {False: 8, True: 2}
"""Requests each sender of a busy stream sends at least (heavy streams: 2), so that a
stream with many in flight is not one wave (the default 64 in flight send 8 and 2)."""
BUSY_REQUESTS = 512
"""Requests of a busy stream measured together (one sample), after two from each sender
unmeasured."""
HEAVY_REQUESTS = 128
"""Requests of a busy stream for the slowest model (its batches take the worker 20-30 ms
on this project's machine), after one from each sender unmeasured."""
ORDINARY_LATENCY_MS = 1000.0
"""The latency target of the probe's ordinary requests (loose: no policy moves them)."""
REFUSED_LATENCY_MS = 1e9
"""A latency target every server refuses (above any ``api.max_latency_ms``): a 422."""


def probe_config(serve_data: dict[str, Any], max_batch: int | None = None) -> dict[str, Any]:
    """The probed server: the scenario's, taking model names (so that the probe's bursts
    choose each request's model, hence the batches; its busy streams of the scenario's own
    requests name none, and the policy chooses), waiting at least
    :data:`PROBE_BATCH_TIMEOUT_MS` for a batch to fill, with batches larger than any
    burst, every model preloaded, and without what would refuse the probe's requests: the
    scenario's rate limit, connection cap, pending cap, shedding, API keys, defense (its
    cost is not the front-end's) and a latency limit under :data:`ORDINARY_LATENCY_MS`
    (a busy stream keeps :data:`BUSY_IN_FLIGHT` requests in flight, or ``--in-flight``).
    ``max_batch``, if given, replaces the largest batch (``zoosim frontend profile
    --max-batch``: the busy streams' batches up to that, the bursts' as before; it must
    exceed every burst)."""
    import copy

    d = copy.deepcopy(serve_data)
    cluster = d.setdefault("cluster", {})
    cluster["batch_timeout_ms"] = max(float(cluster.get("batch_timeout_ms", 0.0)),
                                      PROBE_BATCH_TIMEOUT_MS)
    # no burst fills a batch: each waits for the timer, whose wake-up is then one per burst
    # (a burst that filled its batch would skip it, and the slope would take that for
    # cheaper requests)
    cluster["max_batch"] = max(int(cluster.get("max_batch", 1)), max(BURSTS) + 1)
    if max_batch is not None:
        check_max_batch(max_batch)
        cluster["max_batch"] = max_batch
    # nothing the scenario limits load with, or guards the API with, may refuse the probe's
    # requests (many in flight in a busy stream, no API key, latency targets of 1 s or the
    # scenario's own); every
    # model loaded from the start, so that no burst or stream pays for a load
    cluster.pop("shedding", None)
    cluster["preload"] = "all"
    d.pop("defense", None)
    api = {k: v for k, v in d.get("api", {}).items()
           if k not in ("rate_limit_rps", "rate_burst", "max_connections", "keys", "keys_file")}
    d["api"] = {**api, "model_api": True, "records": True, "port": 0, "max_pending": None,
                "max_latency_ms": max(float(api.get("max_latency_ms", 0.0)),
                                      2 * ORDINARY_LATENCY_MS)}
    return d


# -- the bursts --------------------------------------------------------------------------------
def _diff(a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
    return b[0] - a[0], b[1] - a[1]


async def _stream(client: WireClient, refused: list[bytes], i: int, gap_s: float,
                  pause_s: float,
                  counters: Callable[[], tuple[tuple[float, int], tuple[float, int]]],
                  client_counters: Callable[[], tuple[float, int]],
                  waits: Callable[[], tuple[float, float, float]]) -> Burst:
    """One sample of the cooling sweep: after ``pause_s`` idle, a steady stream of refused
    requests, each sent ``gap_s`` after the previous answer; :data:`STREAM_WARMUP` of them
    unmeasured (the stream reaches its steady state), then :data:`STREAM_REQUESTS`
    measured. Its ``gap_ms`` is what the server's loop slept per wake-up, measured
    (:func:`asleep_per_wakeup`)."""
    import time

    headers = {"Content-Type": "application/json"}

    async def send(j: int) -> None:
        st, _ = await client.post("/v1/classify", refused[j % len(refused)], headers)
        if st != 422:
            raise UserError(f"frontend probe: expected 422, got {st}")
        await asyncio.sleep(gap_s)

    await asyncio.sleep(pause_s)
    for j in range(STREAM_WARMUP):
        await send(i + j)
    s0, w0 = counters()
    q0 = waits()
    c0 = client_counters()
    t0 = time.perf_counter()
    for j in range(STREAM_WARMUP, STREAM_WARMUP + STREAM_REQUESTS):
        await send(i + j)
    wall_ms = (time.perf_counter() - t0) * 1000
    c1 = client_counters()
    q1 = waits()
    s1, w1 = counters()
    server = _diff(s0, s1)
    waited = waits_diff(q0, q1)
    asleep_ms = asleep_per_wakeup(wall_ms, server[0], waited[0], server[1])
    return Burst(0, STREAM_REQUESTS, server, _diff(w0, w1), _diff(c0, c1), [], asleep_ms,
                 sweep=True, waited=waited)


def check_max_batch(max_batch: int) -> None:
    """Refuse a probed server's largest batch (``--max-batch``) that a burst would fill, or
    that no scenario may ask for (:data:`sim.config.MAX_BATCH`)."""
    from sim.config import MAX_BATCH

    if not max(BURSTS) < max_batch <= MAX_BATCH:
        raise UserError(f"--max-batch (the probed server's largest batch) must be "
                        f"{max(BURSTS) + 1} to {MAX_BATCH}, larger than the largest burst "
                        f"(got {max_batch})")


def check_in_flight(in_flight: int, files: int) -> None:
    """Refuse a busy stream's in-flight count (``--in-flight``) outside 1 to
    :data:`MAX_IN_FLIGHT`, or above what ``files`` open descriptors allow (one a
    connection, 64 to spare)."""
    most = min(MAX_IN_FLIGHT, files - 64)
    if not 1 <= in_flight <= most:
        raise UserError(f"--in-flight must be 1 to {most} (got {in_flight})")


def per_sender(in_flight: int, heavy: bool = False) -> int:
    """Requests each of a busy stream's ``in_flight`` senders sends, measured: its share of
    :data:`BUSY_REQUESTS` (heavy: :data:`HEAVY_REQUESTS`), at least
    :data:`MIN_PER_SENDER`."""
    return max((HEAVY_REQUESTS if heavy else BUSY_REQUESTS) // in_flight,
               MIN_PER_SENDER[heavy])


def sender_body(sender: int, j: int, per_sender: int, bodies: int) -> int:
    """The body a busy stream's ``sender`` sends as its ``j``-th of ``per_sender``: the
    senders take consecutive runs of the bodies, so that a stream of ``bodies`` requests
    or more sends each of them (sender + j, as until method version 20's review, sent 71
    of 256 scenario targets)."""
    return (sender * per_sender + j) % bodies


async def _busy_stream(client: WireClient, bodies: list[bytes], want: int, pause_s: float,
                       counters: Callable[[], tuple[tuple[float, int], tuple[float, int]]],
                       client_counters: Callable[[], tuple[float, int]],
                       waits: Callable[[], tuple[float, float, float]],
                       heavy: bool = False, in_flight: int = BUSY_IN_FLIGHT) -> Burst:
    """One busy stream (step 3 of the module docstring): ``in_flight`` senders
    (:data:`BUSY_IN_FLIGHT` unless ``zoosim frontend profile --in-flight`` says), each
    sending its next request as its last is answered, :data:`BUSY_REQUESTS` in all
    measured (``heavy``, for the slowest model: :data:`HEAVY_REQUESTS`; as many as
    :func:`per_sender` says each); ``want`` is the
    status every answer must have (200 or 422). The measured requests start from the
    unmeasured ones' end, all at once, and end with the last answer. The loop wakes 1-4
    times in a stream of 512 refused or by-name requests (run W), under 0.5 % of its cost,
    and 18-33 times in one of the scenario's own, whose models' batches can keep it
    waiting (run AB): :func:`frontend_profile` charges those apart. Sender ``c`` sends
    bodies ``c * n`` to ``c * n + n - 1`` (cyclically, :func:`sender_body`), so that a
    stream sends every body as evenly as its length allows."""
    headers = {"Content-Type": "application/json"}
    each = per_sender(in_flight, heavy)
    ids: list[int] = []

    async def sender(c: int, n: int, keep: bool) -> None:
        for j in range(n):
            st, answer = await client.post(
                "/v1/classify", bodies[sender_body(c, j, n, len(bodies))], headers)
            if st != want:
                raise UserError(f"frontend probe: expected {want}, got {st}")
            if keep and want == 200:
                ids.append(int(json.loads(answer)["id"]))

    async def all_senders(n: int, keep: bool) -> None:
        tasks = [asyncio.ensure_future(sender(c, n, keep)) for c in range(in_flight)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # one failing: the others stopped, not left running
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    await asyncio.sleep(pause_s)
    await all_senders(1 if heavy else 2, False)
    s0, w0 = counters()
    q0 = waits()
    c0 = client_counters()
    await all_senders(each, True)
    c1 = client_counters()
    q1 = waits()
    s1, w1 = counters()
    n = each * in_flight
    ok = n if want == 200 else 0
    return Burst(ok, n - ok, _diff(s0, s1), _diff(w0, w1), _diff(c0, c1), ids, 0.0,
                 busy=True, heavy=heavy, waited=waits_diff(q0, q1))


async def run_bursts(url: str, server_pid: int, bodies: list[list[bytes]], refused: list[bytes],
                     repeats: int, gap_s: float = 0.03, busy: list[bytes] | None = None,
                     heavy: list[bytes] | None = None, in_flight: int = BUSY_IN_FLIGHT,
                     echo: Callable[[str], None] = lambda _: None) -> list[Burst]:
    """``repeats`` rounds of bursts: none (the measurement's own cost), and of each size in
    :data:`BURSTS` ordinary requests for one model (one batch), for several models, and
    refused ones; then the cooling sweep and busy streams of refused requests, of ``busy``
    (ordinary request bodies for the fastest model; none: ``bodies[0]``) and of ``heavy``
    (for the slowest; none: ``bodies[-1]``). ``bodies`` are ordinary request bodies
    grouped by the model they ask for."""
    import threading

    from serve.wire import WireClient

    if not os.path.isdir(f"/proc/{server_pid}/task"):
        raise UserError("zoosim frontend profile reads /proc: it runs on Linux only")
    workers = worker_pids(server_pid)
    me_pid, me_tid = os.getpid(), threading.get_native_id()
    headers = {"Content-Type": "application/json"}
    out: list[Burst] = []
    i = 0

    def counters() -> tuple[tuple[float, int], tuple[float, int]]:
        w = [process_counters(p) for p in workers]
        return (thread_counters(server_pid, server_pid),
                (sum(c for c, _ in w), sum(s for _, s in w)))

    def waits() -> tuple[float, float, float]:
        return (thread_waited_ms(server_pid, server_pid),
                sum(process_waited_ms(p) for p in workers), thread_waited_ms(me_pid, me_tid))

    async with WireClient(url, max_connections=max(*BURSTS, in_flight)) as client:
        for k in (*BURSTS, in_flight):  # open the connections once: no burst connects
            await asyncio.gather(*[client.get("/v1/health", headers) for _ in range(k)])
        kinds = [("none", 0)] + [(kind, k) for k in BURSTS
                                 for kind in ("one model", "models", "refused")]
        for rep in range(repeats):
            for kind, k in kinds:
                if kind == "refused":
                    batch = [refused[(i + j) % len(refused)] for j in range(k)]
                elif kind == "one model":
                    group = bodies[i % len(bodies)]
                    batch = [group[(i + j) % len(group)] for j in range(k)]
                else:
                    batch = [bodies[(i + j) % len(bodies)][j] for j in range(k)]
                i += max(k, 1)
                await asyncio.sleep(gap_s)
                s0, w0 = counters()
                q0 = waits()
                c0 = thread_counters(me_pid, me_tid)
                answers = await asyncio.gather(*[client.post("/v1/classify", b, headers)
                                                 for b in batch])
                c1 = thread_counters(me_pid, me_tid)
                qc = waits()  # the client's window ends with its answers
                await asyncio.sleep(gap_s / 3)  # the server's last writes settle
                q1 = waits()  # the server's and the workers' end with their counters
                s1, w1 = counters()
                status = [st for st, _ in answers]
                want = 422 if kind == "refused" else 200
                if any(st != want for st in status):
                    raise UserError(f"frontend probe: expected {want} answers, got {status}")
                ids = [] if want == 422 else [int(json.loads(body)["id"]) for _, body in answers]
                out.append(Burst(len(ids), k - len(ids), _diff(s0, s1), _diff(w0, w1),
                                 _diff(c0, c1), ids,
                                 waited=(q1[0] - q0[0], q1[1] - q0[1], qc[2] - q0[2])))
            echo(f"frontend probe: round {rep + 1}/{repeats}")
        for _ in range(max(repeats // ROUNDS_PER_STREAM, 2)):  # the cooling sweep
            for gap in GAPS_MS:
                out.append(await _stream(client, refused, i, gap / 1000, gap_s, counters,
                                         lambda: thread_counters(me_pid, me_tid), waits))
                i += STREAM_WARMUP + STREAM_REQUESTS
            for stream, want, slow in ((refused, 422, False), (busy or bodies[0], 200, False),
                                       (heavy or bodies[-1], 200, True)):
                out.append(await _busy_stream(client, stream, want, gap_s, counters,
                                              lambda: thread_counters(me_pid, me_tid), waits,
                                              heavy=slow, in_flight=in_flight))
    return out


def machine_description() -> str:
    """The processor and Python this was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}; Python {platform.python_version()}"


BUSY_TARGETS = 256
"""The scenario's requests whose targets the busy streams cycle through."""


def scenario_targets(data: dict[str, Any], base_dir: Path | None,
                     n: int = BUSY_TARGETS) -> list[tuple[float, float]] | None:
    """The (accuracy, latency) targets of the first ``n`` requests of the scenario
    ``data`` (its tenants, seed and SLO distributions; they do not depend on the rate when
    every tenant's rate is scaled together, as ``zoosim simcheck`` does), or None when it
    has no tenants. One input each, whatever the requests' ``size``."""
    from serve.config import ServeScenario
    from sim.config import parse_scenario
    from workloads.schedule import request_schedule

    if not data.get("tenants"):
        return None
    d = {k: v for k, v in data.items() if k != "duration_s"}
    d["requests"] = n
    sched = request_schedule(parse_scenario(d, base_dir, "frontend probe", ServeScenario))
    return [(float(a), float(lat)) for a, lat in zip(sched["acc_req"], sched["lat_req_ms"],
                                                     strict=True)]


def probe(url: str, server_pid: int, profile: ZooProfile, inputs: np.ndarray, *,
          admin_token: str, zoo_profile: str, repeats: int = 30, passes: int = PASSES,
          cores: float | None = None, targets: list[tuple[float, float]] | None = None,
          in_flight: int = BUSY_IN_FLIGHT, max_batch: int | None = None,
          echo: Callable[[str], None] = lambda _: None) -> tuple[FrontendProfile, dict[str, Any]]:
    """Probe the live server at ``url`` (process ``server_pid``, records on, started with
    ``admin_token``); the profile and the raw bursts (for the record). ``targets`` are the
    scenario's requests' (accuracy, latency) targets (:func:`scenario_targets`): the busy
    streams of answered requests send those, the policy choosing each one's model, as the
    scenario's requests are served; none: requests for the fastest model by name.
    ``in_flight``: the requests each busy stream keeps in flight; ``max_batch``: the
    server's largest batch (for the method line)."""
    from serve.client import fetch_server_records
    from serve.protocol import encode_inputs
    from sim.clock import quiet_gc, run_precise

    def body(j: int, model: str | None, latency_ms: float, accuracy: float = 0.0) -> bytes:
        x = inputs[j % len(inputs)][None]
        named = {"model": model} if model is not None else {}
        return json.dumps({"inputs": encode_inputs(x), "accuracy": accuracy, **named,
                           "latency_ms": latency_ms}).encode()

    # one group of bodies per model, each naming it (the probe's server takes model names),
    # so a burst of one group is one batch and a burst across groups one batch per request
    names = [m.name for m in profile.models]
    bodies = [[body(j, name, ORDINARY_LATENCY_MS) for j in range(max(BURSTS))]
              for name in names]
    refused = [body(j, names[0], REFUSED_LATENCY_MS) for j in range(BUSY_IN_FLIGHT)]
    # the busy streams send the scenario's own requests (what the loop spends choosing a
    # model is part of their cost: 0.63 ms a request back to back against 0.53 for the
    # fastest model by name, ad hoc); without a scenario's, the fastest model by name
    if targets:
        busy = [body(j, None, lat, acc) for j, (acc, lat) in enumerate(targets)]
        answered = f"the scenario's own requests ({len(targets)} targets, the policy choosing)"
    else:
        fastest = min(profile.models, key=lambda m: m.latency_p50(1)).name
        busy = [body(j, fastest, ORDINARY_LATENCY_MS) for j in range(BUSY_IN_FLIGHT)]
        answered = f"{fastest} by name (no tenants given)"
    slowest = max(profile.models, key=lambda m: m.latency_p50(1)).name
    heavy = [body(j, slowest, ORDINARY_LATENCY_MS) for j in range(BUSY_IN_FLIGHT)]
    rounds = []
    quiet_gc()  # the client as it runs in a replay (serve.loadgen)
    for k in range(passes):
        echo(f"frontend probe: pass {k + 1}/{passes}")
        rounds.append(run_precise(run_bursts(url, server_pid, bodies, refused, repeats,
                                             busy=busy, heavy=heavy, in_flight=in_flight,
                                             echo=echo)))
    bursts = [b for r in rounds for b in r]
    records = fetch_server_records(url, admin_token)
    if records is None:
        raise UserError("frontend probe: the server keeps no records (api.records)")
    by_name = {m.name: m for m in profile.models}
    batches = {int(i): (int(b), by_name[str(m)].latency_p50(int(n)))
               for i, b, m, n in zip(records["id"], records["batch_id"], records["model"],
                                     records["batch_size"], strict=True)}
    missing = [i for b in bursts for i in b.ids if i not in batches]
    if missing:
        raise UserError(f"frontend probe: the server has no records of {len(missing)} requests")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    measured = [frontend_profile(r, batches, cores=cores or float(usable or 1),
                                 description=machine_description(), zoo_profile=zoo_profile)
                for r in rounds]
    result = median_pass(measured)
    answered_busy = [b for b in bursts if b.busy and b.ok and not b.heavy]
    batch_size = (sum(b.ok for b in answered_busy)
                  / max(len({batches[i][0] for b in answered_busy for i in b.ids}), 1))
    largest = f", batches of at most {max_batch}" if max_batch is not None else ""
    method = (f"{result.method}; busy streams of {in_flight} requests in flight{largest}; "
              f"answered busy streams: {answered}, in batches of {batch_size:.1f} on "
              "average over all passes")
    if passes > 1:
        method += (f"; the median of {passes} such passes by cost per request (the passes: "
                   + ", ".join(f"{pass_cost_ms(m):.3f}" for m in measured) + " ms)")
    result = result.model_copy(update={"method": method})
    raw = {"pass_cost_ms": [pass_cost_ms(m) for m in measured],
           "bursts": [{"ok": b.ok, "refused": b.refused, "server": b.server,
                       "ids": b.ids, "gap_ms": b.gap_ms, "sweep": b.sweep, "busy": b.busy,
                       "heavy": b.heavy,
                       "waited": b.waited,
                       "workers": b.workers, "client": b.client,
                       "batches": len({batches[i][0] for i in b.ids}), "pass": k}
                      for k, r in enumerate(rounds) for b in r]}
    return result, raw

