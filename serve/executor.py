"""Real batches on real worker threads: the live server's :class:`sim.worker.Executor`.

Each simulated worker of :mod:`sim.worker` becomes one thread with its own copies of the models
it holds (weights read from the profile's safetensors files, no pickle). The worker's SimPy loop
decides what to run, exactly as in simulation; this class runs it: the batch's inputs are
stacked, one forward pass under ``torch.inference_mode`` gives the logits, the softmax is split
back into the requests, and the SimPy event the worker waits on succeeds on the event loop's
thread. Loads read the weights for real; evictions drop the module. torch releases the GIL in
its kernels, so workers overlap as far as the machine's cores allow.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
import torch
from torch import nn

from attacks.victim import softmax
from serve.procexec import WorkerError
from sim.clock import WallClockEnvironment
from sim.profiles import ZooProfile
from sim.request import Request
from zoo_profiles.models import Shape, build_model
from zoo_profiles.profiler import load_weights

if TYPE_CHECKING:
    from sim.system import ServingSystem

log = logging.getLogger("zoosim.serve")


def warm_up(module: nn.Module, in_shape: tuple[int, ...], max_batch: int) -> None:
    """Run ``module`` once at every batch size it may serve: the first call at a new input
    shape pays one-off costs (oneDNN builds its kernels per shape) that are not serving time
    and that the profile, taken after warm-up passes, does not contain."""
    with torch.inference_mode():
        for b in range(1, max_batch + 1):
            module(torch.zeros((b, *in_shape)))


class ThreadExecutor:
    """One thread per worker, running its batches and loads."""

    def __init__(self, env: WallClockEnvironment, profile: ZooProfile, profile_path: Path,
                 in_shape: Shape, num_classes: int, workers: int, threads: int = 1,
                 max_batch: int = 1) -> None:
        self.env = env
        self.profile = profile
        self.base = profile_path.parent
        self.in_shape = in_shape
        self.num_classes = num_classes
        self.max_batch = max_batch
        self.modules: list[dict[int, nn.Module]] = [{} for _ in range(workers)]
        self._reported: set[str] = set()
        # torch's intra-op thread count is per OS thread (OpenMP): set it on each worker's own
        # thread, or a worker runs with every core's worth of threads, unlike its profile
        self.pools = [ThreadPoolExecutor(1, thread_name_prefix=f"zoosim-worker-{w}",
                                         initializer=torch.set_num_threads,
                                         initargs=(threads,))
                      for w in range(workers)]

    def preload(self, system: ServingSystem) -> None:
        """Load, now, the models the system placed on its workers before starting."""
        for w in system.workers:
            for m in w.loaded:
                self.modules[w.id][m] = self._module(m)
                warm_up(self.modules[w.id][m], self.in_shape, self.max_batch)

    def _module(self, m: int) -> nn.Module:
        spec = self.profile.models[m]
        if spec.weights is None:
            raise ValueError(f"model {spec.name!r} has no weights")
        with torch.random.fork_rng(devices=[]):  # the init is overwritten by the weights
            module = build_model(spec.arch, self.in_shape, self.num_classes)
        return load_weights(module, (self.base / spec.weights).resolve(), "cpu",
                            sha256=spec.weights_sha256).eval()

    def _report(self, message: str) -> None:
        """Log an error once (a corrupt model fails every batch of it); any thread."""
        if message not in self._reported and len(self._reported) < 1000:
            self._reported.add(message)
            log.warning("%s", message)

    def health(self) -> list[dict[str, Any]]:
        """Each worker: threads do not die (a failed batch or load is reported, not fatal)."""
        return [{"id": w, "alive": True, "restarts": 0} for w in range(len(self.pools))]

    # -- sim.worker.Executor -----------------------------------------------------------------
    def run(self, worker: int, model: int, batch: list[Request], inputs: int) -> simpy.Event:
        done = self.env.event()
        module = self.modules[worker].get(model)  # None: its load failed; tried again
        xs = [r.payload for r in batch]
        self.pools[worker].submit(self._forward, worker, model, module, xs, batch, done)
        return done

    def load(self, worker: int, model: int) -> simpy.Event:
        done = self.env.event()

        def work() -> None:
            module: nn.Module | None = None
            try:
                module = self._module(model)
                warm_up(module, self.in_shape, self.max_batch)
            except Exception as e:  # e.g. corrupt weights: the model's batches report it
                self._report(f"worker {worker}: cannot load model "
                             f"{self.profile.models[model].name!r}: {e}")
                module = None

            def finish() -> None:
                if module is not None:
                    self.modules[worker][model] = module
                done.succeed()

            self.env.inject_threadsafe(finish)

        self.pools[worker].submit(work)
        return done

    def evict(self, worker: int, model: int) -> None:
        self.modules[worker].pop(model, None)

    # -- on a worker thread ------------------------------------------------------------------
    def _forward(self, worker: int, model: int, module: nn.Module | None, xs: list[np.ndarray],
                 batch: list[Request], done: simpy.Event) -> None:
        result: Any
        loaded = module is None
        try:
            if module is None:
                module = self._module(model)
                warm_up(module, self.in_shape, self.max_batch)
            x = torch.from_numpy(np.concatenate(xs) if len(xs) > 1 else xs[0])
            with torch.inference_mode():
                logits = module(x).numpy()
            probs = softmax(logits)
            bounds = np.cumsum([len(a) for a in xs])[:-1]
            result = np.split(probs, bounds)
        except Exception as e:  # reported to each waiting client, never kills the worker
            self._report(f"worker {worker}: a batch of model "
                         f"{self.profile.models[model].name!r} failed: {e}")
            result = WorkerError("the batch failed on its worker")  # no model name or path

        def finish() -> None:
            if loaded and module is not None and not isinstance(result, Exception):
                self.modules[worker][model] = module
            for i, r in enumerate(batch):
                r.payload = result if isinstance(result, Exception) else result[i]
            done.succeed()

        self.env.inject_threadsafe(finish)

    def shutdown(self) -> None:
        for p in self.pools:
            p.shutdown(wait=True, cancel_futures=True)
