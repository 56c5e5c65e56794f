"""What ``zoosim simcheck`` computes from records: pure functions, tested on both sides of
every threshold (tests/serve/test_simcheck.py).

A *run* is one replay of a workload at one offered load, live (the load generator's records
joined with the server's) or simulated with the front-end model (:mod:`sim.frontend`); both
are reduced to the same figures by :func:`run_figures`. Latency runs from the moment a
request was due to be sent to its answer read, as the client sees it.

**Saturation** (issue 18): a run is saturated when the system does not keep up with the
offered load: its sustained throughput (answers completed per second between the warm-up
and the last scheduled send) is below :data:`KEEP_UP` of the offered rate, or its latency
grows with the run's length (the P50 of the last quarter of the requests, by send time, is
more than :data:`GROWTH` times that of the first quarter). Past saturation the mean latency
is a property of the run's length, not of the system, so the comparison there is of the
verdict and of the sustained throughput.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.profiles import ZooProfile

KEEP_UP = 0.95
"""A run whose sustained throughput is below this share of its offered rate is saturated."""
GROWTH = 3.0
"""A run whose last-quarter P50 latency exceeds this multiple of its first quarter's is
saturated (its backlog grows)."""
MEAN_ERROR_PCT = 15.0
"""Issue 18's bound on |mean latency error| below saturation."""
GOODPUT_POINTS = 10.0
"""Issue 18's bound on the goodput error below saturation (percentage points)."""
THROUGHPUT_ERROR_PCT = 15.0
"""Issue 18's bound on the sustained-throughput error past saturation, and on the error of
the predicted saturation point."""


def saturated(offered_rps: float, throughput_rps: float, growth: float) -> bool:
    """The saturation verdict (module docstring)."""
    return bool(throughput_rps < KEEP_UP * offered_rps or growth > GROWTH)


def run_figures(sent_s: np.ndarray, done_s: np.ndarray, answered: np.ndarray,
                lat_req_ms: np.ndarray, met_accuracy: np.ndarray, models: pd.Series,
                warmup_s: float) -> dict[str, Any]:
    """One run's figures. ``sent_s``: when each request was due to be sent; ``done_s``: when
    its answer was read (NaN: none); ``answered``: a served answer (HTTP 200, or served in
    simulation); ``met_accuracy``: its model met the accuracy target. Latency figures cover
    the answered requests due from ``warmup_s`` on; goodput is the share of those requests
    answered within their latency target by a model meeting their accuracy target."""
    sent_s = np.asarray(sent_s, float)
    done_s = np.asarray(done_s, float)
    answered = np.asarray(answered, bool) & np.isfinite(done_s)
    keep = sent_s >= warmup_s
    n = int(keep.sum())
    lat = (done_s - sent_s) * 1000.0
    ok = keep & answered
    lat_ok = lat[ok]
    end = float(sent_s[keep].max()) if n else warmup_s
    window = end - warmup_s
    in_window = answered & (done_s >= warmup_s) & (done_s <= end)
    offered = n / window if window > 0 else math.nan
    throughput = int(in_window.sum()) / window if window > 0 else math.nan
    order = np.argsort(sent_s[ok], kind="stable")
    q = max(len(order) // 4, 1)
    by_time = lat_ok[order]
    growth = (float(np.median(by_time[-q:]) / np.median(by_time[:q]))
              if len(by_time) >= 8 and np.median(by_time[:q]) > 0 else math.nan)
    good = ok & (lat <= np.asarray(lat_req_ms, float)) & np.asarray(met_accuracy, bool)
    p50, p99 = np.percentile(lat_ok, [50, 99]) if len(lat_ok) else (math.nan, math.nan)
    share = models[ok].astype(str).value_counts(normalize=True).sort_index()
    return {"requests": n, "answered": int(ok.sum()),
            "mean_ms": float(lat_ok.mean()) if len(lat_ok) else math.nan,
            "p50_ms": float(p50), "p99_ms": float(p99),
            "goodput": float(good.sum() / n) if n else math.nan,
            "offered_rps": offered, "throughput_rps": throughput, "growth": growth,
            "saturated": saturated(offered, throughput, 0.0 if math.isnan(growth) else growth),
            "mix": {str(k): float(v) for k, v in share.items()}}


def live_figures(live: pd.DataFrame, warmup_s: float) -> dict[str, Any]:
    """:func:`run_figures` of a live run (``serve.loadgen.replay`` rows joined with the
    server's records)."""
    return run_figures(live["scheduled_s"].to_numpy(float), live["done_s"].to_numpy(float),
                       (live["status"] == 200).to_numpy() & live["model"].notna().to_numpy(),
                       live["lat_req_ms"].to_numpy(float),
                       live["met_accuracy"].fillna(False).to_numpy(bool), live["model"],
                       warmup_s)


def sim_figures(sim: pd.DataFrame, warmup_s: float) -> dict[str, Any]:
    """:func:`run_figures` of a simulated run with the front-end model (``sent_s``,
    ``done_s``); a request the model refused or shed has no model and is not answered."""
    return run_figures(sim["sent_s"].to_numpy(float), sim["done_s"].to_numpy(float),
                       sim["model"].notna().to_numpy(), sim["lat_req_ms"].to_numpy(float),
                       sim["met_accuracy"].to_numpy(bool), sim["model"], warmup_s)


CPU_KEYS = ("frontend", "frontend_wakeups", "workers", "client", "frontend_waited",
            "workers_waited", "client_waited")
"""The processes whose CPU a run reports (:func:`cpu_per_request`)."""


def cpu_per_request(cpu_ms: dict[str, float], requests: int) -> dict[str, float]:
    """A run's CPU per request sent (warm-up included: the counters cover the whole run),
    in ms, for the server's event loop (``frontend``), the workers (forward passes
    included) and the load generator (``client``), the event loop's wake-ups per
    request, and the time each waited, runnable, for a core (``*_waited``: live, every such
    wait, ``schedstat``; simulated, only a wake-up's: the model of the cores slows the
    processes down instead). Live, from the processes' counters
    (:func:`serve.proc_cpu.thread_counters`: the loop's voluntary context switches
    are its wake-ups); simulated, from the modeled
    stations (:meth:`sim.frontend.Frontend.cpu_ms`). Where the two differ the model's costs
    are off at that load, whatever the latencies say."""
    return {k: float(cpu_ms.get(k, math.nan)) / requests if requests else math.nan
            for k in CPU_KEYS}


DRIFT_PCT = 15.0
"""How far the event loop's live CPU per request may be from the model's charge (the median
over the loads below saturation) before a check says the machine's speed moved since the
front-end was profiled (:func:`calibration_drift`)."""


def calibration_drift(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the front-end's calibration held during the check: the median, over the loads
    the live system kept up with, of the event loop's live CPU per request over what the
    model charged, as a percentage difference, and whether it is within :data:`DRIFT_PCT`.
    The probe measures the costs minutes before; on a machine whose speed moves (a shared
    virtual machine) the live processes then run faster or slower than it said, and latency
    errors of that size are the machine's, not the model's. None where no load has CPU
    figures below saturation."""
    ratios = [s["cpu"]["live"]["frontend"]["mean"] / s["cpu"]["sim"]["frontend"]["mean"]
              for s in summaries
              if "cpu" in s and not s["live"]["saturated"]
              and s["cpu"]["sim"]["frontend"]["mean"] > 0
              and math.isfinite(s["cpu"]["live"]["frontend"]["mean"])]
    if not ratios:
        return {"live_over_charged_pct": None, "held": None, "loads": 0}
    pct = 100.0 * (float(np.median(ratios)) - 1.0)
    return {"live_over_charged_pct": pct, "held": abs(pct) <= DRIFT_PCT, "loads": len(ratios)}


SPEED_STEP = 0.05
"""How far off the calibration's speed is taken to be for the sensitivity band: every
load is simulated again at ``1 - SPEED_STEP`` and ``1 + SPEED_STEP`` times the profiled
machine's speed (``frontend.speed``; :func:`speed_band`)."""
SPEEDS = (1.0 - SPEED_STEP, 1.0 + SPEED_STEP)
"""The speeds of the sensitivity band (as keys of a run's ``sim_speed``: ``f"{s:g}"``)."""


def speed_band(summary: dict[str, Any]) -> dict[str, Any] | None:
    """How far a calibration :data:`SPEED_STEP` off moves one load's prediction, and
    whether the live figure lies inside the band it spans (repeat means): below saturation
    the mean latency, past it the sustained throughput. ``shift_pct``: half the band's
    width against the prediction at the profiled speed. A miss inside the band is one a
    calibration that far off would explain (a virtual machine's speed drifts more than
    that between the probe and a check: docs/results/simcheck.md); outside it, not. None
    without the band's runs."""
    band = summary.get("sim_speed")
    if band is None:
        return None
    key = "throughput_rps" if summary["live"]["saturated"] else "mean_ms"
    ends = [band[f"{s:g}"][key]["mean"] for s in SPEEDS]
    lo, hi = min(ends), max(ends)
    mid, live = summary["sim"][key]["mean"], summary["live"][key]["mean"]
    ok = all(map(math.isfinite, (lo, hi, mid, live))) and mid > 0
    return {"figure": key, "low": lo, "high": hi,
            "shift_pct": 100.0 * (hi - lo) / 2 / mid if ok else math.nan,
            "live_inside": bool(ok and lo <= live <= hi)}


def figure_missed(summary: dict[str, Any]) -> bool:
    """Whether a load missed its bound on its main figure, the one its sensitivity band
    covers (below saturation the mean latency, past it the sustained throughput): part of
    :func:`load_summary`'s verdict, which also asks for goodput and agreement on
    saturation."""
    e = summary["errors"]
    if summary["live"]["saturated"]:
        return bool(abs(e["throughput_pct"]["mean"]) > THROUGHPUT_ERROR_PCT)
    return bool(abs(e["mean_pct"]["mean"]) > MEAN_ERROR_PCT)


ENGINE_KEYS = ("server_mean_ms", "batch_ms", "batch_size")
"""The serving system's own figures a run reports (:func:`engine_figures`)."""


def engine_figures(records: pd.DataFrame, latency: str) -> dict[str, float]:
    """Inside the serving system, over the whole run (warm-up included: the server's clock
    is not the client's): the mean latency from admission to the batch done
    (``latency``: the column holding it), the mean time a batch held its worker (taken to
    done, the answer read back included) and the mean requests per batch. The live
    server's records and the simulator's have the same columns (one engine), so these
    split an end-to-end error into the serving system's share and the front-end's."""
    served = records[(records["batch_id"] >= 0) & records["finish_s"].notna()]
    batches = served.drop_duplicates("batch_id")
    nan = math.nan
    return {"server_mean_ms": float(served[latency].mean()) if len(served) else nan,
            "batch_ms": float(((batches["finish_s"] - batches["start_s"]) * 1000).mean())
            if len(batches) else nan,
            "batch_size": len(served) / len(batches) if len(batches) else nan}


def errors(live: dict[str, Any], sim: dict[str, Any]) -> dict[str, Any]:
    """The simulator's errors against one live run: percent for latency and throughput,
    points for goodput, total variation for the selection mix."""
    def pct(key: str) -> float:
        lv, sv = live[key], sim[key]
        return float(100.0 * (sv - lv) / lv) if lv and math.isfinite(lv) else math.nan

    models = sorted(set(live["mix"]) | set(sim["mix"]))
    return {"mean_pct": pct("mean_ms"), "p50_pct": pct("p50_ms"), "p99_pct": pct("p99_ms"),
            "throughput_pct": pct("throughput_rps"),
            "goodput_points": 100.0 * (sim["goodput"] - live["goodput"]),
            "saturation_agrees": live["saturated"] == sim["saturated"],
            "mix_tvd": 0.5 * sum(abs(live["mix"].get(m, 0.0) - sim["mix"].get(m, 0.0))
                                 for m in models)}


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if not len(v):
        return {"mean": math.nan, "min": math.nan, "max": math.nan, "sd": math.nan}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def load_summary(rate: float, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """One load's repeats (each ``{"live": figures, "sim": figures, "errors": ...}``):
    each figure's and each error's mean, min, max and standard deviation over the repeats,
    whether the live system was saturated (in most repeats), and the verdict against issue
    18's bounds: below saturation |mean error| and |goodput error| (repeat means) within
    :data:`MEAN_ERROR_PCT` and :data:`GOODPUT_POINTS`; past it, the simulator saturated too
    (in most repeats) and the sustained throughput within :data:`THROUGHPUT_ERROR_PCT`."""
    out: dict[str, Any] = {"rate_rps": rate, "repeats": len(repeats)}
    for side in ("live", "sim"):
        out[side] = {k: _stats([r[side][k] for r in repeats])
                     for k in ("mean_ms", "p50_ms", "p99_ms", "goodput", "throughput_rps")}
        out[side]["saturated"] = sum(r[side]["saturated"] for r in repeats) * 2 > len(repeats)
    for part, keys in (("cpu", CPU_KEYS), ("engine", ENGINE_KEYS)):
        if all(part in r[side] for r in repeats for side in ("live", "sim")):
            out[part] = {side: {k: _stats([r[side][part][k] for r in repeats]) for k in keys}
                         for side in ("live", "sim")}
    out["errors"] = {k: _stats([r["errors"][k] for r in repeats])
                     for k in ("mean_pct", "p50_pct", "p99_pct", "throughput_pct",
                               "goodput_points", "mix_tvd")}
    if all("errors_queue" in r for r in repeats):  # the core-queue model, for comparison
        out["errors_queue"] = {k: _stats([r["errors_queue"][k] for r in repeats])
                               for k in ("mean_pct", "throughput_pct", "goodput_points")}
        out["sim_queue_saturated"] = sum(r["sim_queue"]["saturated"]
                                         for r in repeats) * 2 > len(repeats)
    if all("sim_speed" in r for r in repeats):  # the sensitivity band (speed_band)
        out["sim_speed"] = {k: {f: _stats([r["sim_speed"][k][f] for r in repeats])
                                for f in ("mean_ms", "throughput_rps")}
                            for k in repeats[0]["sim_speed"]}
    band = speed_band(out)
    if band is not None:
        out["speed_band"] = band
    e = out["errors"]
    if out["live"]["saturated"]:
        ok = out["sim"]["saturated"] and not figure_missed(out)
        why = (f"past saturation: simulator {'also' if out['sim']['saturated'] else 'not'} "
               f"saturated, throughput error {e['throughput_pct']['mean']:+.1f} %")
    else:
        ok = (not out["sim"]["saturated"] and not figure_missed(out)
              and abs(e["goodput_points"]["mean"]) <= GOODPUT_POINTS)
        why = (f"below saturation: simulator "
               f"{'saturated' if out['sim']['saturated'] else 'not saturated'}, mean error "
               f"{e['mean_pct']['mean']:+.1f} %, goodput {e['goodput_points']['mean']:+.1f} "
               "points")
    out["verdict"] = {"ok": bool(ok), "why": why}
    return out


def saturation_verdict(measured: float | None, predicted: float | None) -> dict[str, Any]:
    """The predicted saturation point against the measured one (req/s): within
    :data:`THROUGHPUT_ERROR_PCT` percent, or no verdict when either is unknown."""
    if measured is None or predicted is None or measured <= 0:
        return {"measured_rps": measured, "predicted_rps": predicted, "error_pct": None,
                "ok": None}
    err = 100.0 * (predicted - measured) / measured
    return {"measured_rps": measured, "predicted_rps": predicted, "error_pct": err,
            "ok": abs(err) <= THROUGHPUT_ERROR_PCT}


def bisect_saturation(is_saturated: Any, lo: float, hi: float, steps: int) -> float:
    """The saturation point between ``lo`` (not saturated) and ``hi`` (saturated): the
    middle of the last bracket after ``steps`` bisections (geometric midpoints: relative
    precision); ``is_saturated(rate)`` runs one load."""
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if is_saturated(mid):
            hi = mid
        else:
            lo = mid
    return math.sqrt(lo * hi)


def service_fit(server: pd.DataFrame, profile: ZooProfile) -> dict[str, float]:
    """How live batch times relate to the profile: the line ``live ms = time_scale *
    profiled ms + dispatch_ms``, fitted by least squares to the mean live time of each
    (model, batch size) the server ran, weighted by its number of batches. Used by
    ``experiments/shedding.py`` to set the engine's estimates to this machine's times at a
    given load; ``cv`` is the spread of live / fitted batch times."""
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
        from sim.errors import UserError

        raise UserError("calibration: too few kinds of batch (model, size) to fit")
    x, y, w = (groups[c].to_numpy(float) for c in ("prof", "live", "n"))
    scale, dispatch = np.polyfit(x, y, 1, w=np.sqrt(w))
    if dispatch < 0:  # no negative fixed cost: a line through the origin
        scale, dispatch = float((w * x) @ y / ((w * x) @ x)), 0.0
    scale = max(float(scale), 1e-3)
    ratio = df["live"].to_numpy() / (scale * df["prof"].to_numpy() + dispatch)
    return {"time_scale": scale, "dispatch_ms": float(dispatch),
            "cv": max(float(np.std(ratio)), 1e-6), "batches": len(df), "kinds": len(groups)}
