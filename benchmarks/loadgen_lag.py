"""Load generator timing on this machine: how late requests leave their scheduled time.

The open-loop load generator (:mod:`serve.loadgen`) sends each request at its scheduled time;
``send_lag_ms`` is how late it actually left. How late depends on how busy the machine is, so
the figure is measured here, not asserted in a test (tests/serve/test_loadgen.py checks only
that no request leaves early). Starts a live server on a thread (loopback, ``mnist5k-cpu``),
replays ``examples/poisson.yaml`` at ``--rate`` req/s and prints the send lag's median, p99
and max, and the share of requests answered.

    python benchmarks/loadgen_lag.py [--rate 100] [--requests 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

from serve.config import ServeScenario
from serve.loadgen import replay
from serve.server import ServerThread
from sim.config import load_scenario, parse_scenario
from sim.output import json_text
from workloads.schedule import request_schedule
from zoo_profiles.datasets import load_dataset

POISSON = Path(__file__).resolve().parents[1] / "examples" / "poisson.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=100.0, help="offered load, req/s")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--max-connections", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    web = args.rate * 0.8
    scenario = load_scenario(POISSON, overrides=(
        f"requests={args.requests}", "warmup_s=0", f"tenants.0.arrivals.rate_rps={web:g}",
        f"tenants.1.arrivals.rate_rps={args.rate - web:g}", "tenants.1.arrivals.cv=1.0"))
    serve = parse_scenario({"zoo": {"profile": "mnist5k-cpu"}, "api": {"port": 0}}, None,
                           "benchmark", ServeScenario)
    assert isinstance(serve, ServeScenario)
    inputs = load_dataset("mnist5k").test.x
    with ServerThread(serve) as server:
        records = asyncio.run(replay(server.url, request_schedule(scenario), inputs,
                                     max_connections=args.max_connections))
    lag = records["send_lag_ms"].to_numpy()
    out = {"rate_rps": args.rate, "requests": len(records),
           "ok_share": float((records["status"] == 200).mean()),
           "send_lag_ms": {"p50": float(np.median(lag)), "p99": float(np.percentile(lag, 99)),
                           "max": float(lag.max())}}
    s = out["send_lag_ms"]
    print(f"{args.rate:g} req/s, {len(records)} requests ({out['ok_share']:.1%} answered): "
          f"send lag p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms")
    if args.json:
        args.json.write_text(json_text(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
