"""The engine at scale: memory and speed of a trace replay at 1M, 10M (and 100M) requests.

Each size is one ``zoosim simulate`` in a child process: the day of the Azure Functions 2019
trace that ships with zoosim (all ten functions, their per-minute counts summed, scaled so the
day holds the requested number of requests, compressed to about ``--rate`` requests per
simulated second) on the standard cluster of ``benchmarks/engine.py`` (8 workers, batches up
to 16, the synthetic-7 zoo, the infaas policy). Printed per size: wall time of the command,
simulated requests per wall second of its event loop (summary.json's ``wall_time_s``) and of
the whole command, peak RSS of the child (``wait4``), and the size of ``requests.parquet``.
Flat memory and flat req/s across sizes are what streaming records (issue 17) promise.

    python benchmarks/scale.py [--sizes 1000000 10000000] [--records all] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "workloads" / "data" / "azure_functions_2019_10fn_invocations_per_minute.csv"
DAY_MINUTES = 1440


def trace_total() -> int:
    """Invocations in the shipped trace's day, all ten functions."""
    import pandas as pd

    counts = pd.read_csv(TRACE).iloc[:, 4:4 + DAY_MINUTES]
    return int(counts.to_numpy(dtype=np.int64).sum())


def scenario(n: int, rate_rps: float, total: int) -> dict[str, Any]:
    """The replay of ``n`` requests at about ``rate_rps`` (a 2 % larger scale, cut at n)."""
    scale = 1.02 * n / total
    day_s = DAY_MINUTES * 60.0
    return {"seed": 1, "requests": n, "zoo": {"profile": "synthetic-7"},
            "cluster": {"workers": 8, "max_batch": 16, "batch_timeout_ms": 1.0},
            "service_time": {"type": "lognormal", "cv": 0.1}, "policy": {"type": "infaas"},
            "tenants": [{
                "name": "replay",
                "arrivals": {"type": "azure_functions_2019", "path": str(TRACE),
                             "function": list(range(10)), "start_minute": 1,
                             "minutes": DAY_MINUTES, "scale": scale,
                             "time_compression": max(1.0, n * 1.02 / day_s / rate_rps)},
                "slo": {"accuracy": {"type": "choice", "values": [90, 95, 97]},
                        "latency_ms": {"type": "uniform", "low": 2, "high": 20}}}]}


def measure(n: int, rate_rps: float, total: int, records: str) -> dict[str, Any]:
    """One size in a child process: its wall time, loop speed and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="zoosim-scale-") as tmp:
        cfg, out = Path(tmp) / "replay.yaml", Path(tmp) / "out"
        cfg.write_text(yaml.safe_dump(scenario(n, rate_rps, total)))
        cmd = [sys.executable, "-m", "sim", "simulate", str(cfg), "-o", str(out), "--quiet",
               "--records", records]
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed")
        summary = json.loads((out / "summary.json").read_text())
        table = out / "requests.parquet"
        return {"requests": summary["requests"], "wall_s": wall,
                "loop_s": summary["wall_time_s"],
                "loop_rps": summary["requests"] / summary["wall_time_s"],
                "command_rps": summary["requests"] / wall,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "parquet_mb": table.stat().st_size / 2**20 if table.exists() else 0.0,
                "goodput": summary["goodput"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--rate", type=float, default=12_000.0,
                    help="mean arrival rate of the compressed day (req/s)")
    ap.add_argument("--records", default="all", help="--records of zoosim simulate")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    a = ap.parse_args()
    total = trace_total()
    rows = []
    print(f"{'requests':>12} {'wall s':>8} {'loop req/s':>11} {'cmd req/s':>10} "
          f"{'peak RSS MB':>12} {'parquet MB':>11}")
    for n in a.sizes:
        r = measure(n, a.rate, total, a.records)
        rows.append(r)
        print(f"{r['requests']:>12,} {r['wall_s']:>8.1f} {r['loop_rps']:>11,.0f} "
              f"{r['command_rps']:>10,.0f} {r['peak_rss_mb']:>12,.0f} {r['parquet_mb']:>11,.0f}",
              flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"largest / smallest: peak RSS x{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}, "
              f"loop req/s x{last['loop_rps'] / first['loop_rps']:.2f}")
    if a.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
