"""Short text tables for the terminal."""

from __future__ import annotations

from typing import Any


def summary_table(s: dict[str, Any]) -> str:
    """The headline figures of a summary.json, one per line, plus a per-model line."""
    lat = s["latency_ms"]
    rows = [
        ("requests", f"{s['requests']:,} ({s['completed']:,} completed)"),
        ("goodput", f"{s['goodput']:.3f}  ({s['goodput_rps']:.1f} req/s)"),
        ("SLO met: latency / accuracy",
         f"{s['slo_attainment']['latency']:.3f} / {s['slo_attainment']['accuracy']:.3f}"),
        ("latency ms: mean p50 p95 p99",
         f"{lat['mean']:.3f} {lat['p50']:.3f} {lat['p95']:.3f} {lat['p99']:.3f}"),
        ("wait ms (mean)", f"{s['wait_ms']['mean']:.3f}"),
        ("mean batch size", f"{s['mean_batch_size']:.2f}"),
        ("utilization (mean)",
         f"{sum(s['utilization'].values()) / max(len(s['utilization']), 1):.3f}"),
        ("served by", ", ".join(f"{k}={v}" for k, v in s["served_by"].items())),
        ("simulated / wall", f"{s['sim_time_s']:.2f} s / {s['wall_time_s']:.2f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def attack_table(r: dict[str, Any]) -> str:
    """The headline figures of an attack.json."""
    q, fp, sur = r["queries"], r["fingerprint"], r["surrogate"]
    rows = [
        ("strategy / target", f"{r['strategy']} / {r['target_model']} "
                              f"(victim accuracy {r['victim']['accuracy']:.2f} %)"),
        ("inputs sent / budget",
         f"{q['total']:,} / {q['budget']:,} ({q['budget_counts']}): fingerprint "
         f"{q['fingerprint']:,}, extraction {q['extraction']:,}, verification "
         f"{q['verification']:,} ({q['discarded']:,} discarded)"),
        ("surrogate accuracy / fidelity", f"{sur['accuracy']:.2f} % / {sur['fidelity']:.2f} %"),
        ("trigger consistency", _fmt(fp["trigger_consistency"])),
        ("models found / identification",
         f"{_fmt(fp['models_found'])} / {_fmt(fp['identification_accuracy'])}"),
    ]
    if fp.get("complete") is False:
        rows.append(("fingerprinting", "ran out of budget before its map was done"))
    if r.get("extraction", {}).get("pool_exhausted"):
        rows.append(("extraction", "stopped: every pool input was sent (beyond_pool: stop)"))
    if "benign" in r:
        rows.append(("benign goodput", f"{r['benign']['goodput']:.3f}"))
    if "live" in r:
        live = r["live"]
        rows.append(("live server", f"{live['url']} ({live['wall_s']:.1f} s, "
                                    f"{live['http_requests']:,} HTTP requests, "
                                    f"{live['retries']} retried; records "
                                    f"{'on' if live['records'] else 'off'})"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def nothing_measured(measured: int, total: int, warmup_s: float) -> str | None:
    """The warning line for a run (simulate or load) that measured no request, or None.

    Every request before ``warmup_s`` is left out of the summary's figures, so a short run
    with a long warm-up has null figures everywhere; this says so, and what to change."""
    if measured > 0:
        return None
    if total == 0:
        return ("warning: no request arrived, so the summary has no figures (null): check the "
                "tenants' arrivals and duration_s")
    return (f"warning: all {total:,} requests arrived within the warm-up (warmup_s = "
            f"{warmup_s:g} s), so none was measured and the summary's figures are null: "
            "lower warmup_s (e.g. --set warmup_s=0) or make more requests (--set requests=N)")
