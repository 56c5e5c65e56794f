"""Run a study's points on a local process pool or a Dask cluster; resumable.

Each point's result is written atomically to ``DIR/points/<key>.json`` as soon as it is done,
so a killed sweep loses nothing finished; ``resume`` skips the points already there. The key
(:meth:`Study.key`) hashes the point's fully resolved scenario and the files it names, so a
point whose inputs changed since is run again, and files of other keys are ignored. At the
end the current points are gathered into ``DIR/results.parquet`` (one flat row per point). Dask's
``Client.get_executor()`` is a ``concurrent.futures`` executor, so both backends share one
code path; with no scheduler address, Dask starts a ``LocalCluster``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from experiments.study import Study
from sim.errors import UserError
from sim.output import write_json, write_table

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


def run_point(kind: str, scenario: Any, base_dir: str, threads: int) -> dict[str, Any]:
    """Run one point; returns its flat metrics (a module-level function: picklable)."""
    if kind == "attack":
        import torch

        from attacks.run import run_attack

        torch.set_num_threads(threads)
        report = run_attack(scenario, Path(base_dir)).report
        return flatten(report)
    from sim.run import simulate

    return flatten(simulate(scenario, Path(base_dir)).summary)


@contextmanager
def executor(backend: Literal["local", "dask"], workers: int,
             scheduler: str | None) -> Iterator[Executor]:
    if backend == "local":
        with ProcessPoolExecutor(max_workers=workers) as ex:
            yield ex
        return
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client.get_executor()
        finally:
            client.close()
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client.get_executor()


def run_study(study: Study, out_dir: Path, *, backend: Literal["local", "dask"] = "local",
              workers: int | None = None, scheduler: str | None = None, resume: bool = False,
              progress: bool = True) -> Path:
    """Run every point not yet done; returns the path of ``results.parquet``."""
    points_dir = out_dir / "points"
    done = {p.stem for p in points_dir.glob("*.json")} if points_dir.is_dir() else set()
    if done and not resume:
        raise UserError(f"{out_dir} already holds results of a sweep: pass --resume to "
                        "continue it, or choose another folder")
    keys = [study.key(p) for p in study.points]
    todo = [(p, k) for p, k in zip(study.points, keys, strict=True) if k not in done]
    workers = workers or max(1, min(len(todo), os.cpu_count() or 1))
    threads = 1 if workers > 1 else max(1, os.cpu_count() or 1)
    base_dir = str(study.base_path.parent)
    if todo:
        from tqdm import tqdm

        with executor(backend, workers, scheduler) as ex, \
                tqdm(total=len(study.points), initial=len(study.points) - len(todo),
                     desc="sweep", unit="point", disable=not progress) as bar:
            futures = {ex.submit(run_point, study.cfg.kind, study.scenario(p), base_dir,
                                 threads): (p, k) for p, k in todo}
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
