"""The simulator against reality: the same workload, simulated and served live (issue 7).

1. **Profile** the zoo on this machine (``zoosim zoo profile``; or take a given profile), so
   the simulator's service times are this machine's.
2. **Serve** the scenario live (``zoosim serve``, a separate process, records on) with that
   profile: the server runs the simulator's own policy, defense and worker code.
3. **Calibrate**, at a low load and once, two costs the profile does not contain: the HTTP
   front-end's per request (parsing, JSON, the event loop, the answer's way back: *client
   latency - the server's own latency*, arrival in the serving system to the end of the
   batch), whose samples are drawn from, one per simulated request, and added to its latency
   (a load-independent overhead, not a constant: its spread makes the live tail); and the
   worker's per
   batch (handing the batch to its thread and the answers back: the median of *live batch
   time - profiled time*), which becomes ``zoo.dispatch_ms`` of both the simulator and the
   server that is then compared (so the policy's estimates are the same on both sides).
4. **Compare**, at each load: the very same requests (the scenario's schedule) replayed
   open-loop against the server, and simulated. Reported: the error of mean, P50 and P99
   latency (percent), of goodput (points), and of the per-model selection mix (total-variation
   distance, and per model); and, apart, the server-side latency against the simulator's
   (no overhead involved).

Each finished step is written atomically (``calibration.json``, ``loads/<rps>.json``); running
again with the same settings resumes, and ``simcheck.json`` / ``simcheck.md`` hold the result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import Scenario, parse_scenario, read_yaml
from sim.errors import ConfigError, UserError
from sim.output import write_json, write_table
from sim.profiles import ZooProfile, load_profile, resolve_profile_path
from sim.rng import SeedTree

RATE_KEY = "rate_rps"


# -- the comparison (pure functions of records) --------------------------------------------------
def overhead_ms(live: pd.DataFrame) -> np.ndarray:
    """The HTTP front-end's own time per request: client latency - server latency (ms)."""
    d: np.ndarray = (live["latency_ms"] - live["server_latency_ms"]).dropna().to_numpy(float)
    if not len(d):
        raise UserError("calibration: no answered request has a server record")
    return d


def dispatch_ms(server: pd.DataFrame, profile: ZooProfile) -> dict[str, float]:
    """The worker's fixed cost per batch beyond the profiled forward pass: per batch, the
    live batch time (start to end, as the server's records have it) - the profile's median
    time of that model at that batch size (ms)."""
    batches = server.drop_duplicates("batch_id")
    p50 = {m.name: m for m in profile.models}
    d = np.array([(f - s) * 1000 - p50[m].latency_p50(int(b)) for s, f, m, b in zip(
        batches["start_s"], batches["finish_s"], batches["model"], batches["batch_size"],
        strict=True)])
    if not len(d):
        raise UserError("calibration: the server recorded no batch")
    return _spread(d)


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
def live_server(config: Path, log: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """``zoosim serve CONFIG`` in a child process (its own interpreter: the load generator's
    work never competes for the server's GIL), its stderr in ``log``; yields its URL;
    SIGTERM on exit."""
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sim", "serve", str(config)],
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("digest") == digest:
            return data
    return None


def run_simcheck(config: Path, out_dir: Path, loads: list[float], *,
                 profile: str | None = None, requests: int | None = None,
                 calibration_rps: float = 20.0, calibration_requests: int = 400,
                 progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Profile (unless given), serve, calibrate, and compare at each of ``loads`` (req/s)."""
    from serve.loadgen import fetch_server_records, run_load
    from sim.run import Simulation
    from workloads.schedule import request_schedule
    from zoo_profiles.datasets import load_dataset

    data = read_yaml(config)
    base_dir = config.resolve().parent
    if not isinstance(data, dict):
        raise ConfigError(f"{config}: a scenario is a YAML mapping")
    parse_scenario(data, base_dir, str(config))
    out_dir.mkdir(parents=True, exist_ok=True)
    data["zoo"]["profile"] = str(_profile(data["zoo"]["profile"], base_dir, profile, out_dir,
                                          progress, echo))
    prof = load_profile(data["zoo"]["profile"])
    meta = prof.metadata.model_dump()
    inputs = load_dataset(str(meta.get("dataset", "mnist5k")),
                          split_seed=int(meta.get("split_seed", 0))).test.x
    serve_data = {k: v for k, v in data.items() if k not in ("tenants", "requests",
                                                             "duration_s", "warmup_s")}
    serve_data["api"] = {**data.get("api", {}), "port": 0, "records": True}
    digest = _digest(serve_data, data.get("tenants"), requests)
    results: dict[str, Any] = {"config": str(config), "profile": data["zoo"]["profile"],
                               "loads": []}

    def serve_config(dispatch: float) -> Path:
        cfg = copy.deepcopy(serve_data)
        cfg["zoo"]["dispatch_ms"] = dispatch
        path = out_dir / f"serve-{dispatch:.4f}.yaml"
        write_json(path, cfg)  # JSON is YAML
        return path

    def scenario_at(rate: float, n: int | None, dispatch: float) -> Scenario:
        d = at_rate(data, rate, n)
        d["zoo"]["dispatch_ms"] = dispatch
        return parse_scenario(d, base_dir, str(config))

    cal_path = out_dir / "calibration.json"
    cal_digest = _digest(digest, calibration_rps, calibration_requests)
    cal = _done(cal_path, cal_digest)
    if cal is None:
        echo(f"calibrating at {calibration_rps:g} req/s")
        with live_server(serve_config(0.0), out_dir / "serve-calibration.log") as url:
            sc = scenario_at(calibration_rps, calibration_requests, 0.0)
            live, _ = run_load(url, request_schedule(sc), inputs, progress=progress)
            server = fetch_server_records(url)
        assert server is not None  # the server keeps records
        server = server[server["id"].isin(live["server_id"])]
        front = overhead_ms(live)
        cal = {"digest": cal_digest, "rate_rps": calibration_rps,
               "frontend_ms": {**_spread(front), "samples": front.round(4).tolist()},
               "dispatch_ms": dispatch_ms(server, prof)}
        write_json(cal_path, cal)
    front = np.asarray(cal["frontend_ms"]["samples"], dtype=float)
    dispatch = max(float(cal["dispatch_ms"]["median"]), 0.0)
    echo(f"front-end overhead {np.median(front):.3f} ms per request (median), dispatch "
         f"{dispatch:.3f} ms per batch")
    results["calibration"] = cal
    rows: dict[float, dict[str, Any] | None] = {
        rate: _done(out_dir / "loads" / f"{rate:g}.json", _digest(digest, rate, cal_digest))
        for rate in loads}
    todo = [rate for rate, row in rows.items() if row is None]
    with (live_server(serve_config(dispatch), out_dir / "serve.log") if todo
          else nullcontext("")) as url:
        for rate in todo:
            sc = scenario_at(rate, requests, dispatch)
            live, _ = run_load(url, request_schedule(sc), inputs, warmup_s=sc.warmup_s,
                               progress=progress)
            sim = Simulation(sc, base_dir).run().records
            rng = SeedTree(sc.seed).generator("simcheck", "overhead", f"{rate:g}")
            row = {"digest": _digest(digest, rate, cal_digest), "rate_rps": rate,
                   **compare(live, sim, front, rng, sc.warmup_s)}
            write_table(out_dir / "loads" / f"live-{rate:g}.parquet",
                        live.astype({"tenant": str, "model": str}))
            write_table(out_dir / "loads" / f"sim-{rate:g}.parquet", sim)
            write_json(out_dir / "loads" / f"{rate:g}.json", row)
            rows[rate] = row
            echo(_line(row))
    results["loads"] = [rows[rate] for rate in loads]
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
    cal = results["calibration"]
    fe, dp = cal["frontend_ms"], cal["dispatch_ms"]
    lines = [
        "# Simulator against the live server",
        "",
        f"Profile: `{results['profile']}`. Calibrated at {cal['rate_rps']:g} req/s: front-end "
        f"overhead per request median **{fe['median']:.3f} ms**, mean {fe['mean']:.3f} (p10 "
        f"{fe['p10']:.3f}, p90 {fe['p90']:.3f}; {fe['n']} requests; the simulator draws from "
        f"these samples), dispatch per batch **{dp['median']:.3f} ms** (median; p10 "
        f"{dp['p10']:.3f}, p90 {dp['p90']:.3f}; {dp['n']} batches).",
        "",
        "| load req/s | mean ms live / sim | error | P50 error | P99 error | goodput live / sim "
        "| mix TVD | server-side mean error |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["loads"]:
        e = r["error_pct"]
        lines.append(
            f"| {r['rate_rps']:g} | {r['live']['mean_ms']:.3f} / {r['sim']['mean_ms']:.3f} | "
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
