"""Overload shedding, measured on the live server and predicted by the simulator (issue 16,
"Overload").

``python -m experiments.shedding -o DIR [--quick]``:

1. **Saturation.** Serve the scenario (default ``experiments/shedding_mnist5k.yaml``, the real
   mnist5k-cpu zoo) with shedding off, in a child process (``zoosim serve``: its own
   interpreter, so the load generator never competes for its GIL), and replay its workload
   open-loop (:func:`serve.loadgen.run_load`, the machinery of ``zoosim load``) at a low rate,
   then at rates stepped up geometrically. Saturation is the highest offered rate whose
   client-side P99 stays under 10x the low-rate P99 (issue 16's definition; the first rate
   past it ends the search, and one rate halfway between, geometrically, refines it).
2. **Calibration.** At saturation, on other requests of the same workload, fit this
   machine's batch times to the profile (``live = time_scale x profiled + dispatch_ms``,
   :func:`serve.simcheck_figures.service_fit`, as ``zoosim simcheck`` did before issue 18):
   they become the ``zoo``
   settings of the servers and simulations that follow, so the engine's latency estimate,
   which the deadline rule acts on, is this machine's and not the profile's.
3. **The table.** At 0.5x, 1x and 2x saturation, replay the same requests against a server
   with shedding off and one with admission by deadline (``cluster.shedding.deadline``):
   throughput (ok answers per second), P50 and P99 of the answered requests (from the
   scheduled time), and goodput (answers meeting both the accuracy and the latency target
   per second, as the load generator's summary computes it, the accuracy from the server's
   records), and the requests shed.
4. **The simulator's prediction** of the same points: the same requests, the same engine
   rule and the calibrated batch times, simulated without the front-end model
   (``frontend:``), so it predicts the serving system's own saturation, not the
   front-end's.

Each request carries ``--inputs`` images (8): the rule sees only what the engine sees, its
queues and workers, and with one-image requests this machine's Python HTTP front-end
saturates first (docs/results/simcheck.md), where no engine rule can look. With 8 images per
request on the two slowest models the worker saturates first, which is the overload that
admission by deadline (INFaaS's latency estimate, PSML §3) is for.

Writes ``DIR/shedding.json`` and ``DIR/shedding.md`` (and each server's log). Timing figures
depend on the machine and on what else runs on it: indicative, not asserted by any test.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import Scenario, parse_scenario, read_yaml
from sim.errors import UserError
from sim.output import make_dir, write_json

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "shedding_mnist5k.yaml"
P99_FACTOR = 10.0
"""Saturation: the highest rate whose P99 stays under this many times the low-rate P99."""
MULTIPLES = (0.5, 1.0, 2.0)
MODES = ("off", "deadline")
CALIBRATION_SEED_OFFSET = 1_000_003
"""The calibration run's seed is the scenario's plus this: the same workload, other requests."""


@dataclass
class Settings:
    """How long and how hard each load point runs."""

    point_s: float = 15.0
    """Seconds of arrivals per load point (after a 1 s warm-up that is left out)."""
    low_rps: float = 10.0
    """The low rate whose P99 is the reference (about a tenth of saturation here)."""
    step: float = 1.5
    """Each rate of the search is the previous one times this."""
    max_steps: int = 12
    slack: float = 1.0
    """``cluster.shedding.slack`` of the deadline runs."""
    max_connections: int = 256
    """The load generator's connections at most (the rest queue in the client, and count)."""
    inputs: int = 8
    """Inputs per request (images served together on one model): enough work per request
    that the worker, not the HTTP front-end, is what saturates (see the module docstring)."""


@dataclass
class Point:
    """One load point: offered rate, shedding mode, and what was measured and predicted."""

    rate_rps: float
    mode: str
    live: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)


def scenario_at(data: dict[str, Any], rate: float, point_s: float, mode: str,
                slack: float, base_dir: Path, seed_offset: int = 0) -> Scenario:
    """The scenario with its tenants' rates scaled to ``rate`` in all, arrivals for
    ``warmup_s + point_s`` seconds, and shedding ``mode`` (``seed_offset``: other requests of
    the same workload)."""
    from serve.simcheck import at_rate

    d = at_rate(data, rate, None)
    d["seed"] = int(d.get("seed", 0)) + seed_offset
    d.pop("requests", None)
    d["duration_s"] = float(d.get("warmup_s", 0.0)) + point_s
    d.setdefault("cluster", {})["shedding"] = shed_block(mode, slack)
    return parse_scenario(d, base_dir, f"shedding at {rate:g} req/s")


def shed_block(mode: str, slack: float) -> dict[str, Any]:
    """``cluster.shedding`` of a mode: nothing (off) or admission by deadline."""
    return {"deadline": True, "slack": slack} if mode == "deadline" else {}


def live_figures(summary: dict[str, Any], records: Any) -> dict[str, Any]:
    """The table's figures from a load run's summary and records."""
    m = summary["measured"]
    shed = int(((records["status"] == 503) & records["error"].str.contains("shed")).sum())
    return {"offered_rps": summary["offered_rps"], "throughput_rps": summary["throughput_rps"],
            "p50_ms": m["latency_ms"]["p50"], "p99_ms": m["latency_ms"]["p99"],
            "goodput_rps": m["goodput_rps"], "goodput": m["goodput"],
            "requests": summary["requests"], "ok": summary["ok"], "shed": shed,
            "errors": summary["errors"], "server_records": summary.get("server_records"),
            "server_p50_ms": summary.get("server_latency_ms", {}).get("p50"),
            "server_p99_ms": summary.get("server_latency_ms", {}).get("p99"),
            "send_lag_p50_ms": summary["send_lag_ms"]["p50"]}


def schedule_of(sc: Scenario, inputs: int) -> pd.DataFrame:
    """The scenario's requests (:func:`workloads.schedule.request_schedule`), each carrying
    ``inputs`` inputs."""
    from workloads.schedule import request_schedule

    schedule = request_schedule(sc)
    schedule["size"] = np.int32(inputs)
    return schedule


def simulate_schedule(sc: Scenario, schedule: pd.DataFrame, base_dir: Path
                      ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The very requests of ``schedule`` (sizes included) served by ``sc``'s simulated system:
    records and summary, as ``zoosim simulate`` derives them."""
    import simpy

    from sim.build import build_system
    from sim.records import records_frame
    from sim.request import Request
    from sim.tally import summarize

    env = simpy.Environment()
    system = build_system(sc, env, base_dir=base_dir)
    rows = list(zip(schedule["id"].tolist(), schedule["tenant"].cat.codes.tolist(),
                    schedule["arrival_s"].tolist(), schedule["acc_req"].tolist(),
                    schedule["lat_req_ms"].tolist(), schedule["size"].tolist(), strict=True))

    def source() -> Generator[simpy.Event, Any, None]:
        for rid, tenant, t, acc, lat, size in rows:
            if t > env.now:
                yield env.timeout(t - env.now)
            system.submit(Request(rid, tenant, t, acc, lat, size=size))

    env.process(source())
    env.run()
    df = records_frame(system.requests, [t.name for t in sc.tenants], system.zoo.names,
                       system.zoo.accuracy, system.defense.admits, system.sheds)
    summary = summarize(df, warmup_s=sc.warmup_s, n_workers=len(system.workers),
                        seed=sc.seed, wall_time_s=0.0, sim_events=None, area=system.area,
                        loads=0, evictions=0).to_json()
    return df, summary


def sim_figures(df: pd.DataFrame, s: dict[str, Any]) -> dict[str, Any]:
    """The same figures, simulated: throughput is the requests served per second to the
    last answer, as the load generator's is."""
    served = int((df["model"].cat.codes >= 0).sum())
    last = float(df["finish_s"].max()) if len(df) else 0.0
    return {"offered_rps": len(df) / float(df["arrival_s"].max()) if len(df) else math.nan,
            "throughput_rps": served / last if last > 0 else math.nan,
            "p50_ms": s["latency_ms"]["p50"], "p99_ms": s["latency_ms"]["p99"],
            "goodput_rps": s["goodput_rps"], "goodput": s["goodput"],
            "requests": len(df), "ok": served, "shed": int(s.get("shed") or 0)}


Measure = Callable[[float], dict[str, Any]]


def find_saturation(measure: Measure, s: Settings, echo: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Issue 16's saturation: the highest offered rate whose P99 is under
    :data:`P99_FACTOR` x the P99 at ``s.low_rps``, searched upward by ``s.step``, then refined
    once halfway (geometrically) between the last rate under and the first over."""
    low = measure(s.low_rps)
    limit = P99_FACTOR * low["p99_ms"]
    tried = [{"rate_rps": s.low_rps, **low}]
    echo(f"  {s.low_rps:g} req/s: p99 {low['p99_ms']:.2f} ms (limit {limit:.2f} ms)")
    good, bad = s.low_rps, None
    rate = s.low_rps
    for _ in range(s.max_steps):
        rate *= s.step
        f = measure(rate)
        tried.append({"rate_rps": rate, **f})
        echo(f"  {rate:g} req/s: p99 {f['p99_ms']:.2f} ms")
        if not f["p99_ms"] < limit:   # NaN (nothing answered) is over
            bad = rate
            break
        good = rate
    if bad is not None:
        mid = math.sqrt(good * bad)
        f = measure(mid)
        tried.append({"rate_rps": mid, **f})
        echo(f"  {mid:g} req/s: p99 {f['p99_ms']:.2f} ms")
        if f["p99_ms"] < limit:
            good = mid
    return {"saturation_rps": good, "low_p99_ms": low["p99_ms"], "p99_limit_ms": limit,
            "found": bad is not None, "tried": tried}


@contextmanager
def served(data: dict[str, Any], mode: str, slack: float, out: Path, name: str
           ) -> Iterator[tuple[str, Any]]:
    """The scenario served live in a child process with shedding ``mode`` and records on
    (its config and log: ``out/serve/<name>.*``); yields its URL and the credentials that
    read its records."""
    from serve.auth import Credentials, new_key
    from serve.simcheck import live_server

    d = {k: v for k, v in copy.deepcopy(data).items()
         if k not in ("tenants", "requests", "duration_s", "warmup_s")}
    d.setdefault("cluster", {})["shedding"] = shed_block(mode, slack)
    d["api"] = {**d.get("api", {}), "port": 0, "records": True}
    config = out / "serve" / f"{name}.yaml"
    write_json(config, d)  # JSON is YAML
    token = new_key()
    with live_server(config, out / "serve" / f"{name}.log", admin_token=token) as url:
        yield url, Credentials(admin_token=token)


def run(config: Path, out: Path, s: Settings, *, simulate: bool = True,
        progress: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole measurement (module docstring); returns what ``shedding.json`` holds."""
    from serve.client import fetch_server_records
    from serve.loadgen import run_load
    from serve.simcheck_figures import service_fit
    from sim.profiles import load_profile
    from zoo_profiles.datasets import load_dataset

    started = time.perf_counter()
    data = read_yaml(config)
    base_dir = config.resolve().parent
    parse_scenario(data, base_dir, str(config))
    make_dir(out)
    profile = load_profile(data["zoo"]["profile"], base_dir)
    meta = profile.metadata
    images = load_dataset(meta.dataset or "mnist5k", split_seed=meta.split_seed).test.x

    def live_measure(url: str, creds: Any, mode: str) -> Measure:
        def measure(rate: float) -> dict[str, Any]:
            sc = scenario_at(data, rate, s.point_s, mode, s.slack, base_dir)
            records, summary = run_load(url, schedule_of(sc, s.inputs), images,
                                        warmup_s=sc.warmup_s, progress=progress,
                                        max_connections=s.max_connections, credentials=creds)
            return live_figures(summary, records)
        return measure

    def sim_measure(mode: str) -> Measure:
        def measure(rate: float) -> dict[str, Any]:
            sc = scenario_at(data, rate, s.point_s, mode, s.slack, base_dir)
            return sim_figures(*simulate_schedule(sc, schedule_of(sc, s.inputs), base_dir))
        return measure

    def calibrate(url: str, creds: Any, rate: float) -> dict[str, float]:
        """Live batch times against the profile at ``rate`` (other requests of the same
        workload): ``time_scale`` and ``dispatch_ms``
        (:func:`serve.simcheck_figures.service_fit`)."""
        sc = scenario_at(data, rate, s.point_s, "off", s.slack, base_dir,
                         CALIBRATION_SEED_OFFSET)
        records, _ = run_load(url, schedule_of(sc, s.inputs), images, warmup_s=sc.warmup_s,
                              progress=progress, max_connections=s.max_connections,
                              credentials=creds)
        server = fetch_server_records(url, creds.admin_token)
        if server is None:
            raise UserError("calibration: the server kept no records")
        answered = records.loc[(records["status"] == 200)
                               & (records["scheduled_s"] >= sc.warmup_s), "server_id"]
        try:
            return service_fit(server[server["id"].isin(answered)], profile)
        except UserError as e:   # e.g. one kind of batch only: keep the profile's times
            echo(f"  {e}; the profile's batch times are kept")
            return {"time_scale": 1.0, "dispatch_ms": 0.0}

    points: dict[tuple[float, str], Point] = {}
    with served(data, "off", s.slack, out, "search") as (url, creds):
        echo("saturation search, live, shedding off")
        search = find_saturation(live_measure(url, creds, "off"), s, echo)
        sat = search["saturation_rps"]
        fit = calibrate(url, creds, sat)
        echo(f"  batch times at {sat:g} req/s: {fit['time_scale']:.2f} x profiled + "
             f"{fit['dispatch_ms']:.2f} ms")
    # the engine's estimate takes this machine's batch times from here on: in the servers
    # below and in the simulations (the closures above read ``data`` when called)
    data = copy.deepcopy(data)
    data["zoo"] = {**data["zoo"], "time_scale": fit["time_scale"],
                   "dispatch_ms": fit["dispatch_ms"]}
    rates = [m * sat for m in MULTIPLES]
    for mode in MODES:
        with served(data, mode, s.slack, out, mode) as (url, creds):
            for rate in rates:
                points[rate, mode] = Point(rate, mode, live_measure(url, creds, mode)(rate))
                echo(_line(points[rate, mode]))
    sim_search: dict[str, Any] | None = None
    if simulate:
        for (rate, mode), p in points.items():
            p.sim = sim_measure(mode)(rate)
        sim_search = find_saturation(sim_measure("off"), s, lambda _: None)
    result = {
        "config": str(config), "settings": s.__dict__, "saturation": search,
        "calibration": fit,
        "sim_saturation": ({k: v for k, v in sim_search.items() if k != "tried"}
                           if sim_search else None),
        "points": [{"multiple": m, "rate_rps": p.rate_rps, "mode": p.mode, "live": p.live,
                    "sim": p.sim}
                   for m, rate in zip(MULTIPLES, rates, strict=True) for mode in MODES
                   for p in [points[rate, mode]]],
        "wall_s": time.perf_counter() - started,
    }
    write_json(out / "shedding.json", result)
    (out / "shedding.md").write_text(table(result))
    return result


def _line(p: Point) -> str:
    f = p.live
    return (f"  {p.rate_rps:7.1f} req/s {p.mode:>8}: {f['throughput_rps']:.1f} ok/s, "
            f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, goodput "
            f"{f['goodput_rps']:.1f}/s, shed {f['shed']}")


def _num(x: Any, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) \
        else f"{x:,.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """shedding.md: one row per (load, mode), live and simulated side by side."""
    sat = result["saturation"]
    sim_sat = result.get("sim_saturation")
    cal = result["calibration"]
    s = result["settings"]
    lines = [
        "# Overload shedding: live and simulated",
        "",
        f"Scenario `{Path(result['config']).name}`, {s['inputs']} inputs per request; "
        f"{s['point_s']:g} s of Poisson arrivals per load point (1 s warm-up left out). "
        "Saturation (live, shedding off): "
        f"**{sat['saturation_rps']:.0f} req/s**, the highest offered rate whose client P99 "
        f"stayed under {P99_FACTOR:g}x the P99 at {s['low_rps']:g} req/s "
        f"({sat['low_p99_ms']:.2f} ms)"
        + (f"; the simulator's, by the same rule: {sim_sat['saturation_rps']:.0f} req/s"
           if sim_sat else "") + ". Batch times calibrated at saturation: "
        f"{cal['time_scale']:.2f} x profiled + {cal['dispatch_ms']:.2f} ms.",
        "",
        "| load | offered req/s | shedding | throughput ok/s live / sim | P50 ms live / sim "
        "| P99 ms live / sim | goodput /s live / sim | shed live / sim | server-side P50 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["points"]:
        lv, sm = p["live"], p["sim"] or {}
        lines.append(
            f"| {p['multiple']:g}x | {p['rate_rps']:.0f} | {p['mode']} | "
            f"{_num(lv['throughput_rps'])} / {_num(sm.get('throughput_rps'))} | "
            f"{_num(lv['p50_ms'])} / {_num(sm.get('p50_ms'))} | "
            f"{_num(lv['p99_ms'])} / {_num(sm.get('p99_ms'))} | "
            f"{_num(lv['goodput_rps'])} / {_num(sm.get('goodput_rps'))} | "
            f"{lv['shed']:,} / {_num(sm.get('shed'), 0)} | {_num(lv.get('server_p50_ms'))} |")
    lines += ["", "Live latencies are the client's, from each request's scheduled time; the "
              "server-side P50 is the engine's own (arrival in the serving system to the end of "
              "the batch), the part its latency estimate can see. Simulated: the same requests, "
              "the calibrated batch times, no HTTP front-end.", "",
              f"Whole run: {result['wall_s'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.shedding -o DIR [--quick] [--config YAML] ...``"""
    ap = argparse.ArgumentParser(prog="python -m experiments.shedding",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                    help="scenario (one or more tenants with rate_rps; default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="5 s load points (a rough table)")
    ap.add_argument("--point-s", type=float, help="seconds of arrivals per load point (15)")
    ap.add_argument("--low-rps", type=float, default=Settings.low_rps,
                    help="the reference rate of the saturation search (default: %(default)s)")
    ap.add_argument("--step", type=float, default=Settings.step,
                    help="rate ratio between search steps (default: %(default)s)")
    ap.add_argument("--slack", type=float, default=Settings.slack,
                    help="cluster.shedding.slack of the deadline runs (default: %(default)s)")
    ap.add_argument("--inputs", type=int, default=Settings.inputs,
                    help="inputs per request (default: %(default)s)")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulator's prediction")
    ap.add_argument("--progress", action="store_true", help="a progress bar per load point")
    args = ap.parse_args(argv)
    point_s = args.point_s or (5.0 if args.quick else Settings.point_s)
    s = Settings(point_s=point_s, low_rps=args.low_rps, step=args.step, slack=args.slack,
                 inputs=args.inputs)
    result = run(args.config, args.out, s, simulate=not args.no_sim, progress=args.progress)
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
