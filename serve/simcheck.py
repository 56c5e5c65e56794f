"""The simulator against reality: the same workload, simulated and served live (issue 7).

1. **Profile** the zoo on this machine (``zoosim zoo profile``; or take a given profile), so
   the simulator's service times are this machine's.
2. **Serve** the scenario live (``zoosim serve``, a separate process, records on) with that
   profile: the server runs the simulator's own policy, defense and worker code.
3. **Calibrate**, at each load, on an independent run of the same workload (another seed:
   other requests) two things the profile does not contain. The HTTP front-end's overhead
   per request (parsing, JSON, the event loop, the answer's way back): *client latency - the
   server's own latency* (arrival in the serving system to the end of the batch); one of these
   samples is drawn for each simulated request and added to its latency (it does not depend
   on the requests, but it is not a constant: its spread is much of the live tail). And the
   live batch times against the profile: the least-squares line ``live = time_scale *
   profiled + dispatch_ms`` (``dispatch_ms``: the hand-off of a batch to its worker and back;
   ``time_scale``: forward passes slowed by the front-end and the load generator sharing the
   machine's cores), which become the ``zoo`` settings of both the simulator and the server
   then compared, so the policy's estimates are the same on both sides. Both are measured at
   the rate they are used at because, on this 2-core VM, they change with the load (an idle
   vCPU is slow to wake up; a busy machine slows the forward passes).
4. **Compare**, at each load: the very same requests (the scenario's schedule) replayed
   open-loop against the server, and simulated. Reported: the error of mean, P50 and P99
   latency (percent), of goodput (points), and of the per-model selection mix (total-variation
   distance, and per model); and, apart, the server-side latency against the simulator's
   (no overhead involved).

Each finished step is written atomically (``loads/<rps>-calibration.json``,
``loads/<rps>.json``); running again with the same settings resumes, and ``simcheck.json`` /
``simcheck.md`` hold the result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serve.auth import ADMIN_TOKEN_ENV, Credentials, new_key
from sim.config import Scenario, parse_scenario, read_yaml
from sim.errors import ConfigError, UserError
from sim.output import make_dir, write_json, write_table
from sim.profiles import ZooProfile, load_profile, resolve_profile_path
from sim.rng import SeedTree

RATE_KEY = "rate_rps"
VERSION = 6
"""Bumped when the method changes, so that a rerun does not resume older results."""
CALIBRATION_SEED_OFFSET = 1_000_003
"""The calibration run's seed is the scenario's plus this: the same workload, other requests."""


# -- the comparison (pure functions of records) --------------------------------------------------
def overhead_ms(live: pd.DataFrame) -> np.ndarray:
    """The HTTP front-end's own time per request: client latency - server latency (ms)."""
    d: np.ndarray = (live["latency_ms"] - live["server_latency_ms"]).dropna().to_numpy(float)
    if not len(d):
        raise UserError("calibration: no answered request has a server record")
    return d


def service_fit(server: pd.DataFrame, profile: ZooProfile) -> dict[str, float]:
    """How live batch times relate to the profile: the line ``live ms = time_scale *
    profiled ms + dispatch_ms``, fitted by least squares to the mean live time of each
    (model, batch size) the server ran, weighted by its number of batches (means: the
    simulator's service times then have the live mean, which is what queueing and mean
    latency depend on; the profile's medians are lower on a busy machine). ``dispatch_ms`` is
    the fixed host cost of a batch (the hand-off to the worker and back), ``time_scale`` the
    slowdown of the forward passes on a machine whose cores the front-end and the load
    generator share; both become the ``zoo`` settings of the compared runs. ``cv`` is the
    spread of live / fitted batch times, reported (the simulator keeps the profile's
    deterministic service times, Clockwork's predictable executor: with this spread as
    lognormal jitter, a few stalled batches in the calibration made it overpredict)."""
    batches = server.drop_duplicates("batch_id")
    by_name = {m.name: m for m in profile.models}
    df = pd.DataFrame({
        "prof": [by_name[m].latency_p50(int(b))
                 for m, b in zip(batches["model"], batches["batch_size"], strict=True)],
        "live": ((batches["finish_s"] - batches["start_s"]) * 1000).to_numpy(float),
        "key": batches["model"].astype(str) + "/" + batches["batch_size"].astype(str)})
    groups = df.groupby("key").agg(prof=("prof", "first"), live=("live", "mean"),
                                   n=("live", "size"))
    if len(groups) < 2 or np.ptp(groups["prof"]) == 0:
        raise UserError("calibration: too few kinds of batch (model, size) to fit")
    x, y, w = (groups[c].to_numpy(float) for c in ("prof", "live", "n"))
    scale, dispatch = np.polyfit(x, y, 1, w=np.sqrt(w))
    if dispatch < 0:  # no negative fixed cost: a line through the origin
        scale, dispatch = float((w * x) @ y / ((w * x) @ x)), 0.0
    scale = max(float(scale), 1e-3)
    ratio = df["live"].to_numpy() / (scale * df["prof"].to_numpy() + dispatch)
    return {"time_scale": scale, "dispatch_ms": float(dispatch),
            "cv": max(float(np.std(ratio)), 1e-6), "batches": len(df), "kinds": len(groups)}


def _spread(d: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = np.percentile(d, [10, 50, 90])
    return {"median": float(p50), "p10": float(p10), "p90": float(p90), "mean": float(d.mean()),
            "n": len(d)}


def figures(latency_ms: np.ndarray, lat_req_ms: np.ndarray, met_accuracy: np.ndarray,
            models: pd.Series) -> dict[str, Any]:
    """Mean/P50/P99 latency, goodput (answered within the latency target by a model meeting
    the accuracy target) and the share of requests per model."""
    p50, p99 = np.percentile(latency_ms, [50, 99])
    share = models.astype(str).value_counts(normalize=True).sort_index()
    return {"requests": len(latency_ms), "mean_ms": float(latency_ms.mean()),
            "p50_ms": float(p50), "p99_ms": float(p99),
            "goodput": float(((latency_ms <= lat_req_ms) & met_accuracy).mean()),
            "mix": {str(k): float(v) for k, v in share.items()}}


def compare(live: pd.DataFrame, sim: pd.DataFrame, overhead: np.ndarray,
            rng: np.random.Generator, warmup_s: float = 0.0) -> dict[str, Any]:
    """Live records (client latency joined with the server's) against simulated ones, request
    by request the same workload. Each simulated latency gets a front-end overhead drawn from
    the calibration's ``overhead`` samples (ms): the overhead does not depend on the load, but
    it is not a constant either, and its spread is what the tail of live latency is made of."""
    live = live[(live["scheduled_s"] >= warmup_s) & (live["status"] == 200)
                & live["model"].notna()]
    sim = sim[sim["arrival_s"] >= warmup_s]
    lv = figures(live["latency_ms"].to_numpy(float), live["lat_req_ms"].to_numpy(float),
                 live["met_accuracy"].to_numpy(bool), live["model"])
    drawn = rng.choice(overhead, size=len(sim))
    sm = figures(sim["latency_ms"].to_numpy(float) + drawn, sim["lat_req_ms"].to_numpy(float),
                 sim["met_accuracy"].to_numpy(bool), sim["model"])
    server = live["server_latency_ms"].to_numpy(float)
    engine = sim["latency_ms"].to_numpy(float)
    models = sorted(set(lv["mix"]) | set(sm["mix"]))
    mix = {m: {"live": lv["mix"].get(m, 0.0), "sim": sm["mix"].get(m, 0.0)} for m in models}

    def pct(key: str) -> float:
        return float(100.0 * (sm[key] - lv[key]) / lv[key])

    return {
        "live": lv, "sim": sm, "overhead_ms": _spread(overhead),
        "error_pct": {"mean": pct("mean_ms"), "p50": pct("p50_ms"), "p99": pct("p99_ms")},
        "goodput_error_points": 100.0 * (sm["goodput"] - lv["goodput"]),
        "mix_tvd": 0.5 * sum(abs(v["live"] - v["sim"]) for v in mix.values()),
        "mix": mix,
        "server_side": {"live_mean_ms": float(server.mean()), "sim_mean_ms": float(engine.mean()),
                        "error_pct": 100.0 * (engine.mean() - server.mean()) / server.mean()},
    }


# -- the live server, in its own process ----------------------------------------------------------
@contextmanager
def live_server(config: Path, log: Path, timeout_s: float = 120.0,
                admin_token: str | None = None) -> Iterator[str]:
    """``zoosim serve CONFIG`` in a child process (its own interpreter: the load generator's
    work never competes for the server's GIL), its stderr in ``log``; yields its URL;
    SIGTERM on exit. ``admin_token`` becomes its admin token (for the records)."""
    token = {ADMIN_TOKEN_ENV: admin_token} if admin_token else {}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sim", "serve", str(config)],
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **token})
        out = proc.stdout
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(out.readline() if out else ""),
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        try:
            if not line or "listening on " not in line[0]:
                proc.kill()
                proc.wait(timeout=10)
                raise UserError(f"the live server did not start: "
                                f"{log.read_text().strip() or 'no answer'}")
            yield line[0].rsplit(" ", 1)[-1].strip()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


# -- the whole check ------------------------------------------------------------------------------
def at_rate(data: dict[str, Any], rate: float, requests: int | None) -> dict[str, Any]:
    """The scenario mapping with its tenants' rates scaled to ``rate`` requests/s in all."""
    out = copy.deepcopy(data)
    tenants = out.get("tenants") or []
    rates = [t.get("arrivals", {}).get(RATE_KEY) for t in tenants]
    if not tenants or any(not isinstance(r, (int, float)) for r in rates):
        raise ConfigError("simcheck: every tenant needs arrivals with a rate_rps "
                          "(poisson, gamma, constant, ...) so that the load can be set")
    total = float(sum(rates))
    for t, r in zip(tenants, rates, strict=True):
        t["arrivals"][RATE_KEY] = rate * r / total
    if requests is not None:
        out["requests"] = requests
    return out


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _done(path: Path, digest: str) -> dict[str, Any] | None:
    """A finished step's stored row (for a resumed run), with the nulls that stand for
    non-finite figures (strict JSON) read back as NaN, as the run computed them."""
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("digest") == digest:
            row: dict[str, Any] = _nulls_as_nan(data)
            return row
    return None


def _nulls_as_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _nulls_as_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls_as_nan(v) for v in value]
    return value


def run_simcheck(config: Path, out_dir: Path, loads: list[float], *,
                 profile: str | None = None, requests: int | None = None,
                 calibration_requests: int = 2000, progress: bool = True,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Profile (unless given), then at each of ``loads`` (req/s): calibrate on an independent
    run of the workload, serve the scenario's own requests live, simulate them, compare."""
    from serve.client import fetch_server_records
    from serve.loadgen import run_load
    from sim.run import Simulation
    from workloads.schedule import request_schedule
    from zoo_profiles.datasets import load_dataset

    data = read_yaml(config)
    base_dir = config.resolve().parent
    if not isinstance(data, dict):
        raise ConfigError(f"{config}: a scenario is a YAML mapping")
    parse_scenario(data, base_dir, str(config))
    at_rate(data, 1.0, None)  # every tenant must have a rate
    make_dir(out_dir)
    data["zoo"]["profile"] = str(_profile(data["zoo"]["profile"], base_dir, profile, out_dir,
                                          progress, echo))
    prof = load_profile(data["zoo"]["profile"])
    meta = prof.metadata
    inputs = load_dataset(meta.dataset or "mnist5k", split_seed=meta.split_seed).test.x
    serve_data = {k: v for k, v in data.items() if k not in ("tenants", "requests",
                                                             "duration_s", "warmup_s")}
    serve_data["api"] = {**data.get("api", {}), "port": 0, "records": True}
    digest = _digest(VERSION, serve_data, data.get("tenants"), requests, calibration_requests)
    token = new_key()  # the admin token of the servers this run starts, for their records
    creds = Credentials(admin_token=token)

    def with_service(d: dict[str, Any], fit: dict[str, float] | None) -> dict[str, Any]:
        d = copy.deepcopy(d)
        if fit is not None:
            d["zoo"]["time_scale"] = fit["time_scale"]
            d["zoo"]["dispatch_ms"] = fit["dispatch_ms"]
        return d

    def serve_config(fit: dict[str, float] | None, name: str) -> Path:
        path = out_dir / "serve" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        write_json(path, with_service(serve_data, fit))  # JSON is YAML
        return path

    def scenario(rate: float, n: int | None, fit: dict[str, float] | None,
                 seed_offset: int = 0) -> Scenario:
        d = with_service(at_rate(data, rate, n), fit)
        d["seed"] = int(d.get("seed", 0)) + seed_offset
        return parse_scenario(d, base_dir, str(config))

    def calibrate(url: str, rate: float) -> dict[str, Any]:
        sc = scenario(rate, calibration_requests, None, CALIBRATION_SEED_OFFSET)
        live, _ = run_load(url, request_schedule(sc), inputs, progress=progress,
                           credentials=creds)
        live = live[(live["scheduled_s"] >= sc.warmup_s) & (live["status"] == 200)]
        server = fetch_server_records(url, creds.admin_token)
        assert server is not None  # the server keeps records
        server = server[server["id"].isin(live["server_id"])]
        front = overhead_ms(live)
        return {"digest": _digest(digest, rate), "rate_rps": rate,
                "frontend_ms": {**_spread(front), "samples": front.round(4).tolist()},
                "service": service_fit(server, prof)}

    loads_dir = out_dir / "loads"
    rows: list[dict[str, Any]] = []
    for rate in loads:  # each load calibrated right before it is compared: the VM drifts
        found = _done(loads_dir / f"{rate:g}-calibration.json", _digest(digest, rate))
        if found is None:
            echo(f"calibrating at {rate:g} req/s")
            with live_server(serve_config(None, "calibration"),
                             out_dir / "serve" / f"{rate:g}-calibration.log",
                             admin_token=token) as url:
                found = calibrate(url, rate)
            write_json(loads_dir / f"{rate:g}-calibration.json", found)
        cal = found
        front = np.asarray(cal["frontend_ms"]["samples"], dtype=float)
        fit = cal["service"]
        d = _digest(digest, rate, cal["digest"])
        done = _done(loads_dir / f"{rate:g}.json", d)
        if done is not None:
            row = done
        else:
            sc = scenario(rate, requests, fit)
            with live_server(serve_config(fit, f"{rate:g}"),
                             out_dir / "serve" / f"{rate:g}.log", admin_token=token) as url:
                live, _ = run_load(url, request_schedule(sc), inputs, warmup_s=sc.warmup_s,
                                   progress=progress, credentials=creds)
            sim = Simulation(sc, base_dir).run().frame
            rng = SeedTree(sc.seed).generator("simcheck", "overhead", f"{rate:g}")
            row = {"digest": d, "rate_rps": rate,
                   "calibration": {"frontend_ms": {k: v for k, v in cal["frontend_ms"].items()
                                                   if k != "samples"},
                                   "service": fit},
                   **compare(live, sim, front, rng, sc.warmup_s)}
            write_table(loads_dir / f"live-{rate:g}.parquet",
                        live.astype({"tenant": str, "model": str}))
            write_table(loads_dir / f"sim-{rate:g}.parquet", sim)
            write_json(loads_dir / f"{rate:g}.json", row)
        echo(_line(row))
        rows.append(row)
    results: dict[str, Any] = {"config": str(config), "profile": data["zoo"]["profile"],
                               "calibration_requests": calibration_requests, "loads": rows}
    write_json(out_dir / "simcheck.json", results)
    (out_dir / "simcheck.md").write_text(table(results))
    return results


def _profile(ref: str, base_dir: Path, given: str | None, out_dir: Path, progress: bool,
             echo: Callable[[str], None]) -> Path:
    """The profile to use: the one given, or the zoo re-measured on this machine (kept)."""
    if given is not None:
        return resolve_profile_path(given, base_dir)
    from zoo_profiles.build import profile_zoo

    src = resolve_profile_path(ref, base_dir)
    name = f"{src.stem}-here"
    path = out_dir / "profile" / f"{name}.yaml"
    if not path.is_file():
        echo(f"profiling {src.stem} on this machine (zoosim zoo profile)")
        (out_dir / "profile").mkdir(parents=True, exist_ok=True)
        path = profile_zoo(str(src), "cpu", name, out_dir=out_dir / "profile",
                           progress=progress)
    return path


def _line(row: dict[str, Any]) -> str:
    e = row["error_pct"]
    return (f"{row['rate_rps']:>7g} req/s: mean {row['live']['mean_ms']:.3f} ms live, "
            f"{row['sim']['mean_ms']:.3f} sim ({e['mean']:+.1f} %); p50 {e['p50']:+.1f} %, "
            f"p99 {e['p99']:+.1f} %; goodput {row['live']['goodput']:.3f} vs "
            f"{row['sim']['goodput']:.3f}; mix TVD {row['mix_tvd']:.3f}")


def table(results: dict[str, Any]) -> str:
    """simcheck.md: one row per load."""
    lines = [
        "# Simulator against the live server",
        "",
        f"Profile: `{results['profile']}`. At each load, a calibration run of "
        f"{results['calibration_requests']} other requests of the same workload (seed + "
        f"{CALIBRATION_SEED_OFFSET}) measured the front-end overhead per request (client "
        "latency - server latency; the simulator draws from these samples) and fitted live "
        "batch times to the profile (`time_scale` x profiled + `dispatch_ms`, the `zoo` "
        "settings of both the simulator and the server compared).",
        "",
        "| load req/s | overhead ms median / mean | time_scale, dispatch ms | mean ms live / sim "
        "| error "
        "| P50 error | P99 error | goodput live / sim | mix TVD | server-side mean error |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["loads"]:
        e = r["error_pct"]
        fe, fit = r["calibration"]["frontend_ms"], r["calibration"]["service"]
        lines.append(
            f"| {r['rate_rps']:g} | {fe['median']:.3f} / {fe['mean']:.3f} | "
            f"{fit['time_scale']:.2f}, {fit['dispatch_ms']:.3f} | "
            f"{r['live']['mean_ms']:.3f} / {r['sim']['mean_ms']:.3f} | "
            f"{e['mean']:+.1f} % | {e['p50']:+.1f} % | {e['p99']:+.1f} % | "
            f"{r['live']['goodput']:.3f} / {r['sim']['goodput']:.3f} | {r['mix_tvd']:.3f} | "
            f"{r['server_side']['error_pct']:+.1f} % |")
    lines += ["", "Per-model selection share (live / sim):", ""]
    models = sorted({m for r in results["loads"] for m in r["mix"]})
    lines.append("| load req/s | " + " | ".join(models) + " |")
    lines.append("|---:|" + "---:|" * len(models))
    for r in results["loads"]:
        cells = [f"{r['mix'].get(m, {}).get('live', 0):.3f} / "
                 f"{r['mix'].get(m, {}).get('sim', 0):.3f}" for m in models]
        lines.append(f"| {r['rate_rps']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
