"""Run a study's points on a local process pool or a Dask cluster; resumable.

Each point's result is written atomically to ``DIR/points/<key>.json`` as soon as it is done,
so a killed sweep loses nothing finished; ``resume`` skips the points already there. The key
(:meth:`Study.key`) hashes the point's fully resolved scenario and the files it names, so a
point whose inputs changed since is run again, and files of other keys are ignored. At the
end the current points are gathered into ``DIR/results.parquet`` (one flat row per point). Dask's
``Client.get_executor()`` is a ``concurrent.futures`` executor, so both backends share one
code path; with no scheduler address, Dask starts a ``LocalCluster``.

A sweep leaves no worker behind, however it ends. Every worker process we start (the local
pool's, via ``initializer``; a ``LocalCluster``'s, via a preload calling :func:`dask_setup`)
runs :func:`exit_with_parent`, a watchdog thread that ends the process once its parent (the
sweep process) is gone, even if that was killed with SIGKILL. On Ctrl-C, SIGTERM or an error,
the sweep does not wait for running points: it cancels the rest and stops the workers at once
(SIGTERM raises ``SystemExit`` while a sweep runs, so this teardown runs for it too).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from experiments.study import Study
from sim.errors import UserError
from sim.output import make_dir, write_json, write_table

SCHEDULER_TIMEOUT_S = 5
"""How long to try to reach a Dask scheduler (``--scheduler``) before giving up (Dask's own
default is 30 s, and then a traceback)."""

SKIP = ("tenants", "utilization", "served_by", "trigger_spec", "thresholds", "littles_law")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; per-tenant/per-worker breakdowns are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in SKIP:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def run_point(kind: str, scenario: Any, base_dir: str) -> dict[str, Any]:
    """Run one point; returns its flat metrics and ``point_wall_s``, the wall time it took
    (a module-level function: picklable)."""
    from sim.sinks import NullSink

    started = time.perf_counter()
    # a study keeps the summary only: the records stream through its tally and are dropped
    if kind == "attack":   # torch on one thread, whatever the workers (attacks.run)
        from attacks.run import run_attack

        row = flatten(run_attack(scenario, Path(base_dir), sink=NullSink()).report)
    else:
        from sim.run import simulate

        row = flatten(simulate(scenario, Path(base_dir), sink=NullSink()).summary)
    row["point_wall_s"] = round(time.perf_counter() - started, 3)
    return row


def exit_with_parent(poll_s: float = 0.5) -> None:
    """In a worker process: exit (``os._exit``) as soon as the process that started it is
    gone, checked every ``poll_s`` seconds from a daemon thread.

    The parent is the process's parent at start-up (the sweep process for the local pool and
    for a ``LocalCluster``, whose nannies live in the client process); when it dies the
    worker is re-parented and ``getppid`` changes. (A parent gone before this runs, a window
    of milliseconds, is not noticed.) Polling, not ``PR_SET_PDEATHSIG``: that signal fires
    when the *thread* that started the worker ends, and Dask starts its workers from a
    helper thread.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _local_worker_start() -> None:
    """Initializer of the local pool's workers: the watchdog; SIGINT (a Ctrl-C goes to the
    whole process group) is left to the sweep process, which stops the workers itself, and
    SIGTERM kills (a forked worker would otherwise inherit the sweep's handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    exit_with_parent()


def dask_setup(worker: Any) -> None:
    """Dask preload hook (``LocalCluster(preload=["experiments.runner"])``): the watchdog in
    every worker process of a cluster this sweep started."""
    exit_with_parent()


def _stop_pool(ex: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers now, without waiting for points."""
    procs = list((getattr(ex, "_processes", None) or {}).values())  # no public accessor
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()


@contextmanager
def executor(backend: Literal["local", "dask"], workers: int,
             scheduler: str | None) -> Iterator[Executor]:
    """A pool of ``workers`` processes; on any exception (KeyboardInterrupt, SystemExit
    included) its workers are stopped at once rather than left to finish their points."""
    if backend == "local":
        ex = ProcessPoolExecutor(max_workers=workers, initializer=_local_worker_start)
        try:
            yield ex
        except BaseException:
            _stop_pool(ex)
            raise
        ex.shutdown()
        return
    from dask.distributed import Client, LocalCluster

    if scheduler:  # someone else's workers: only our client (and its tasks) go away
        client = connect(scheduler)
        try:
            yield client.get_executor()
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, preload=[__name__]) as cluster, \
            Client(cluster) as client:
        try:
            yield client.get_executor()
        except BaseException:
            # A closing nanny gives a busy worker 4 s before killing it; 0.4 s here.
            cluster.sync(_close_nannies, list(cluster.workers.values()))
            raise


def connect(scheduler: str, timeout_s: float = SCHEDULER_TIMEOUT_S) -> Any:
    """A Dask ``Client`` of the scheduler at ``scheduler``; an address that is malformed or
    does not answer within ``timeout_s`` is a one-line :class:`UserError`."""
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=timeout_s)
    except (OSError, ValueError, TimeoutError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({reason}); "
                        "start it (dask scheduler) or check the address "
                        "(tcp://HOST:PORT)") from None


async def _close_nannies(nannies: list[Any]) -> None:
    import asyncio

    await asyncio.gather(*(n.close(timeout=0.5) for n in nannies), return_exceptions=True)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a sweep runs, SIGTERM raises ``SystemExit(143)`` in the main thread (so the pool
    is torn down as on Ctrl-C); a second SIGTERM kills at once. The previous handler is put
    back afterwards. Outside the main thread signals cannot be handled: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def run_study(study: Study, out_dir: Path, *, backend: Literal["local", "dask"] = "local",
              workers: int | None = None, scheduler: str | None = None, resume: bool = False,
              progress: bool = True) -> Path:
    """Run every point not yet done; returns the path of ``results.parquet``."""
    make_dir(out_dir)  # a folder that cannot be written fails now, not after the points
    points_dir = out_dir / "points"
    done = {p.stem for p in points_dir.glob("*.json")} if points_dir.is_dir() else set()
    if done and not resume:
        raise UserError(f"{out_dir} already holds results of a sweep: pass --resume to "
                        "continue it, or choose another folder")
    keys = [study.key(p) for p in study.points]
    todo = [(p, k) for p, k in zip(study.points, keys, strict=True) if k not in done]
    workers = workers or max(1, min(len(todo), os.cpu_count() or 1))
    base_dir = str(study.base_path.parent)
    if todo:
        from tqdm import tqdm

        with _sigterm_raises(), executor(backend, workers, scheduler) as ex, \
                tqdm(total=len(study.points), initial=len(study.points) - len(todo),
                     desc="sweep", unit="point", disable=not progress) as bar:
            futures = {ex.submit(run_point, study.cfg.kind, study.scenario(p), base_dir):
                       (p, k) for p, k in todo}
            for fut in as_completed(futures):
                point, key = futures[fut]
                row = {**{f"param.{k}": v for k, v in point.items()}, **fut.result()}
                write_json(points_dir / f"{key}.json", row)
                bar.update(1)
    return gather(study, out_dir, keys)


def gather(study: Study, out_dir: Path, keys: list[str] | None = None) -> Path:
    """The rows of the study's points (in its order; files of other keys are not read) into
    ``results.parquet``."""
    import pandas as pd

    rows = []
    for key in [study.key(p) for p in study.points] if keys is None else keys:
        f = out_dir / "points" / f"{key}.json"
        if f.is_file():
            rows.append(json.loads(f.read_text()))
    path = out_dir / "results.parquet"
    write_table(path, pd.DataFrame(rows))
    return path
