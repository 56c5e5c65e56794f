"""The HTTP front-end and the host's cores as modeled stations (issue 18, ``frontend:``).

Without this model a request enters the serving system at its arrival and its latency ends
with its batch. That is the engine's latency, and it is all the live server's front-end adds
nothing to only while the machine has cores to spare: on a CPU-serving host the front-end's
parsing and answering, the workers' forward passes and a local load generator compete for
the same few cores, and the front-end saturates on its own (docs/results/simcheck.md). With
``frontend:`` a request's way is:

1. (with ``client``) the load generator, a single-threaded process on the same host: the
   request waits for one of its ``max_connections`` slots, then its ``send`` cost;
2. the front-end: refused at once (unserved, ``shed``) if it already holds
   ``max_connections`` requests; else its ``ingress`` cost on one of the ``processes``
   front-end processes (one FCFS queue), after which it enters the serving system
   (:meth:`sim.system.ServingSystem.submit`: defense, policy, queues, batching, all as
   before) and ``arrival`` is that moment;
3. when a worker takes its batch, the front-end hands the batch over (it writes the inputs
   to the worker's pipe; when the batching timer took the batch, the front-end's loop first
   has to be free, and pays a wake-up if it slept), then the batch runs: with
   ``workers_on_host`` its time is CPU work on the host too (each worker a single-threaded
   process; the batch's service time, the zoo's own ``time_scale`` and ``dispatch_ms``
   included, scaled by the profile's ``worker.forward_scale`` and the worker's per-batch
   cost added; a batch that wakes its worker pays its wake-up and, by ``cold_scale``, runs
   slower the longer the worker slept, or as after a long sleep if another worker ran
   meanwhile: its weights went through the shared caches), so a busy front-end slows the
   forward passes and the other way round; then
   the front-end reads the outputs back (``dispatch``, once per batch, for the write and the
   read), queued behind the work its event loop already has, and only then is the batch done
   and the worker free for the next. That queueing is what makes batches grow under load, as
   they do live (a worker's answer waits for the busy front-end), and so sets where the
   system saturates;
4. the front-end's ``egress`` cost for the answer, then the client's ``receive`` cost;
   the request is done (``done``) and recorded.

All of these share the host's cores (by processor sharing, :class:`sim.host.Host`, unless
``frontend.cpu`` says otherwise), and every
cost is drawn from the machine's front-end profile (:mod:`sim.frontend_profile`) on the
stream ``frontend/<cost>``. Latency in the records is then ``done - sent``: what the client
sees, from the moment it was due to send.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.frontend_profile import FrontendProfile
from sim.host import CoreQueue, Cores, Host, RunQueues, Station
from sim.rng import SeedTree

if TYPE_CHECKING:
    import simpy

    from sim.config import FrontendConfig
    from sim.request import Request
    from sim.system import ServingSystem


class Frontend:
    """The modeled front-end of one serving system (module docstring)."""

    def __init__(self, env: simpy.Environment, system: ServingSystem, config: FrontendConfig,
                 profile: FrontendProfile, seeds: SeedTree) -> None:
        self.env = env
        self.system = system
        profile = profile.at_speed(config.speed)
        cores = config.cores or profile.machine.cores
        self.host: Cores
        if config.cpu == "sharing":
            self.host = Host(env, cores)
        elif config.cpu == "run_queues":
            self.host = RunQueues(env, cores)
        elif config.cpu == "queue":
            self.host = CoreQueue(env, cores, config.slice_ms / 1000
                                  if config.slice_ms else math.inf)
        else:  # the config's Literal admits no other
            raise ValueError(f"unknown frontend.cpu: {config.cpu!r}")
        fe = profile.frontend
        self.server = fe.station(self.host, config.processes)
        self._ingress = fe.ingress.sampler(seeds.generator("frontend", "ingress"))
        self._egress = fe.egress.sampler(seeds.generator("frontend", "egress"))
        self.max_connections = config.max_connections
        self.holding = 0
        """Requests the front-end holds: from the start of reading one to its answer sent."""
        self.client: Station | None = None
        self.client_slots = 0
        self.client_busy = 0
        self.client_waiting: deque[Request] = deque()
        if config.client is not None:
            if profile.client is None:
                raise ValueError("the front-end profile has no client costs (a local load "
                                 "generator needs them)")
            c = profile.client
            self.client = c.station(self.host)
            self.client_slots = config.client.max_connections
            self._send = c.send.sampler(seeds.generator("frontend", "send"))
            self._receive = c.receive.sampler(seeds.generator("frontend", "receive"))
        self._dispatch = fe.dispatch.sampler(seeds.generator("frontend", "dispatch"))
        self._worker_dispatch_s = profile.worker.dispatch_ms / 1000
        """A worker's CPU per batch beyond the forward pass (on the host's cores only)."""
        self._forward_scale = profile.worker.forward_scale
        """A live worker's forward pass over the profiled one (on the host's cores only)."""
        self.workers: list[Station] | None = None
        if config.workers_on_host:
            self.workers = [profile.worker.station(self.host) for _ in system.workers]
            for w in self.workers:  # each one's forward passes evict the others' weights
                w.peers = [p for p in self.workers if p is not w]
        system.state.run_batch = self.run_batch
        system.frontend = self

    def cpu_ms(self) -> dict[str, float]:
        """CPU milliseconds each modeled process has used so far, wake-ups included, the
        front-end's wake-ups, and the milliseconds each one's wake-ups waited for a core
        (``*_waited``): what ``zoosim simcheck`` sets against the live processes'
        counters (``workers`` and ``client`` NaN when not modeled on the host)."""
        nan = float("nan")
        return {"frontend": self.server.cpu_s * 1000, "frontend_wakeups": self.server.wakeups,
                "workers": (sum(w.cpu_s for w in self.workers) * 1000
                            if self.workers is not None else nan),
                "client": self.client.cpu_s * 1000 if self.client is not None else nan,
                "frontend_waited": self.server.waited_s * 1000,
                "workers_waited": (sum(w.waited_s for w in self.workers) * 1000
                                   if self.workers is not None else nan),
                "client_waited": self.client.waited_s * 1000 if self.client is not None else nan}

    # -- the way in ------------------------------------------------------------------------
    def arrive(self, req: Request) -> None:
        """A request is due to be sent now (the arrival source's callback)."""
        req.sent = self.env.now
        if self.client is None:
            self._at_server(req)
        elif self.client_busy < self.client_slots:
            self._send_now(req)
        else:
            self.client_waiting.append(req)

    def _send_now(self, req: Request) -> None:
        assert self.client is not None
        self.client_busy += 1
        self.client.submit(self._send(), lambda: self._at_server(req))

    def _at_server(self, req: Request) -> None:
        cap = self.max_connections
        if cap is not None and self.holding >= cap:
            self.system.refuse(req)
            self._reply(req)
            return
        self.holding += 1
        self.server.submit(self._ingress(), lambda: self._admit(req))

    def _admit(self, req: Request) -> None:
        req.arrival = self.env.now
        self.system.submit(req)

    # -- batches -------------------------------------------------------------------------
    def run_batch(self, worker: int, service_s: float, done: Callable[[], None]) -> None:
        """A worker starts a batch of ``service_s``: the front-end process hands it over,
        it runs (on the host's cores when the workers are there), and the batch is done
        only once the front-end has read its answer back (``dispatch``)."""
        def collect() -> None:
            # live, the answer waits in the worker's pipe until the front-end's event loop
            # gets to it, behind the parsing and answering already queued; the worker takes
            # its next batch in that same callback, so under load its batches grow
            self.server.submit(self._dispatch(), done)

        def hand_over() -> None:
            if self.workers is not None:
                self.workers[worker].submit(service_s * self._forward_scale
                                            + self._worker_dispatch_s, collect)
            else:
                self.env.timeout(service_s).callbacks.append(lambda _: collect())

        # the hand-off is the event loop's: in the callback that took the batch (a parse,
        # the previous batch's answer: the live engine steps inside it) it runs at once;
        # when the batching timer took it, the loop runs the timer once it is free, waking
        # for it if it slept. Its CPU is counted in ``dispatch`` with the answer's (the
        # probe measures them together), so that job costs a wake-up at most
        if self.server.in_callback():
            hand_over()
        else:
            self.server.submit(0.0, hand_over)

    # -- the way out -----------------------------------------------------------------------
    def answer(self, batch: list[Request]) -> None:
        """Requests whose batch finished now (or that the engine turned away): answer each."""
        self.server.submit_all([(self._egress(), lambda r=r: self._answered(r))  # type: ignore[misc]
                                for r in batch])

    def _answered(self, req: Request) -> None:
        self.holding -= 1
        self._reply(req)

    def _reply(self, req: Request) -> None:
        if self.client is None:
            self._delivered(req)
        else:
            self.client.submit(self._receive(), lambda: self._received(req))

    def _received(self, req: Request) -> None:
        self.client_busy -= 1
        if self.client_waiting:
            self._send_now(self.client_waiting.popleft())
        self._delivered(req)

    def _delivered(self, req: Request) -> None:
        req.done = self.env.now
        self.system.deliver([req])
