"""The open-loop load generator: the simulator's workloads replayed against the live server.

``zoosim load`` turns a simulate scenario into its request schedule
(:func:`workloads.schedule.request_schedule`: exactly the requests the simulator would serve)
and sends each request at ``t0 + arrival_s`` whatever became of the earlier ones (open loop:
a slow server gets the load it would get from independent users, and latency is measured from
the *scheduled* time, so queueing in the client is not hidden: no coordinated omission).
Answers are recorded per request, joined (when the server keeps records) with the server's
ground truth by server request id, and summarised like the simulator's ``summary.json``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from serve.auth import Credentials
from serve.client import fetch_server_records
from serve.protocol import CLIENT_HEADER, encode_inputs
from serve.wire import WireClient, WireError, encode_headers
from sim.clock import quiet_gc, raise_open_file_limit, run_precise
from sim.errors import UserError
from sim.summary import _stats

JOINED_COLUMNS = ("model", "batch_size", "server_latency_ms", "met_accuracy")
"""What :func:`join_server_records` adds from the server's records."""


def _bodies(schedule: pd.DataFrame, inputs: np.ndarray) -> list[tuple[bytes, bytes, bytes]]:
    """Each request's body in three pre-encoded parts (joined at send time, a memcpy): the
    inputs (``size`` rows taken cyclically from ``inputs``; each distinct slice is encoded
    once), and the accuracy and latency targets."""
    if len(inputs) == 0:
        raise ValueError("replay needs at least one input")
    n_in = len(inputs)
    cache: dict[tuple[int, int], bytes] = {}
    out: list[tuple[bytes, bytes, bytes]] = []
    pos = 0
    for size, acc, lat in zip(schedule["size"].tolist(), schedule["acc_req"].tolist(),
                              schedule["lat_req_ms"].tolist(), strict=True):
        key = (pos % n_in, int(size))
        enc = cache.get(key)
        if enc is None:
            rows = np.arange(key[0], key[0] + key[1]) % n_in
            enc = json.dumps(encode_inputs(inputs[rows])).encode()
            cache[key] = enc
        pos += int(size)
        out.append((b'{"inputs": ', enc,
                    f', "accuracy": {float(acc)!r}, "latency_ms": {float(lat)!r}}}'.encode()))
    return out


async def replay(url: str, schedule: pd.DataFrame, inputs: np.ndarray, *,
                 max_connections: int = 256, timeout_s: float = 60.0, progress: bool = False,
                 lead_s: float = 0.05, credentials: Credentials | None = None) -> pd.DataFrame:
    """Send every scheduled request to ``url``'s ``POST /v1/classify`` at ``t0 + arrival_s``.

    ``schedule`` has the columns of :func:`workloads.schedule.request_schedule`; ``t0`` is
    ``lead_s`` after the bodies are encoded. A request never waits for earlier answers; at
    most ``max_connections`` are on the wire at once (the rest queue in the client, and that
    wait counts in their latency; ``sent_s`` is when a request went on the wire). Requests
    go out through :class:`serve.wire.WireClient` (``http://`` only), whose CPU cost per
    request is small and does not grow with the load. Times are ``time.perf_counter``
    seconds since ``t0`` (some event loops, e.g. uvloop, keep ``loop.time()`` in whole
    milliseconds). Returns one row per request, in schedule order: ``id, tenant,
    scheduled_s, sent_s, done_s``, ``latency_ms`` (``done_s - scheduled_s``),
    ``send_lag_ms`` (``sent_s - scheduled_s``), ``acc_req``, ``lat_req_ms``, ``status``
    (HTTP status, 0 for a transport error), ``error`` ("" when fine; for a transport error
    e.g. ``"WireError: timeout after 60 s"``), ``server_id`` (-1 on error), ``label`` (the
    first input's label, -1 on error).
    """
    from tqdm import tqdm

    schedule = schedule.reset_index(drop=True)
    n = len(schedule)
    scheduled = schedule["arrival_s"].to_numpy(dtype="f8")
    if n and (np.diff(scheduled) < 0).any():
        order = np.argsort(scheduled, kind="stable")
        schedule = schedule.iloc[order].reset_index(drop=True)
        scheduled = scheduled[order]
    bodies = _bodies(schedule, inputs)
    creds = credentials or Credentials()
    # each request's header lines, encoded once per tenant: its client id and, where the
    # server wants keys, its own key (keys taken in turn)
    codes = schedule["tenant"].astype("category").cat.codes.to_numpy()
    first = np.unique(codes, return_index=True)[1]
    tenant_names = schedule["tenant"].astype(str).to_numpy()
    head_of = {int(codes[j]): encode_headers({CLIENT_HEADER: str(tenant_names[j]),
                                              "Content-Type": "application/json",
                                              **creds.headers(int(codes[j]))})
               for j in first}
    heads = [head_of[c] for c in codes.tolist()]
    sent = np.full(n, np.nan)
    done = np.full(n, np.nan)
    status = np.zeros(n, dtype="i4")
    server_id = np.full(n, -1, dtype="i8")
    label = np.full(n, -1, dtype="i8")
    errors = [""] * n
    loop = asyncio.get_running_loop()
    now = time.perf_counter
    bar = tqdm(total=n, unit="req", desc="load", disable=not progress, leave=False)

    # at most max_connections requests are handed to the client at once (its pool never
    # makes them wait); the others wait here, in arrival order and at O(1) each, so that
    # sent_s is when a request went on the wire
    slots = asyncio.Semaphore(max_connections)

    async def one(i: int, client: WireClient, t0: float) -> None:
        body = b"".join(bodies[i])
        try:
            async with slots:
                sent[i] = now() - t0
                code, text = await client.post("/v1/classify", body, heads[i])
                done[i] = now() - t0
            status[i] = code
            data = json.loads(text)
            if code == 200:
                server_id[i] = int(data["id"])
                label[i] = int(data["labels"][0])
            else:
                errors[i] = str(data.get("error", text.decode(errors="replace"))) \
                    if isinstance(data, dict) else text.decode(errors="replace")
        except (WireError, ValueError, KeyError, IndexError, TypeError) as e:
            if np.isnan(done[i]):
                done[i] = now() - t0
            errors[i] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        finally:
            bar.update(1)

    quiet_gc()  # no full collection of the whole heap in the middle of the run
    async with WireClient(url, max_connections=max_connections, timeout_s=timeout_s) as client:
        tasks: set[asyncio.Task[None]] = set()
        t0 = now() + lead_s
        for i in range(n):
            delay = t0 + scheduled[i] - now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(i, client, t0))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
    bar.close()
    return pd.DataFrame({
        "id": schedule["id"].to_numpy(dtype="i8"),
        "tenant": schedule["tenant"].astype("category"),
        "scheduled_s": scheduled,
        "sent_s": sent,
        "done_s": done,
        "latency_ms": (done - scheduled) * 1000,
        "send_lag_ms": (sent - scheduled) * 1000,
        "acc_req": schedule["acc_req"].to_numpy(dtype="f8"),
        "lat_req_ms": schedule["lat_req_ms"].to_numpy(dtype="f8"),
        "status": status,
        "error": errors,
        "server_id": server_id,
        "label": label,
    })


def join_server_records(records: pd.DataFrame, server: pd.DataFrame) -> pd.DataFrame:
    """``records`` (from :func:`replay`) with the server's ``model``, ``batch_size``,
    ``server_latency_ms`` and ``met_accuracy`` of each answered request, by server id (missing
    values where the server has no record: errors, requests still in flight)."""
    cols = server[["id", "model", "batch_size", "latency_ms", "met_accuracy"]].rename(
        columns={"id": "server_id", "latency_ms": "server_latency_ms"})
    out = records.drop(columns=[c for c in JOINED_COLUMNS if c in records.columns])
    out = out.merge(cols, on="server_id", how="left", validate="many_to_one")
    out["model"] = out["model"].astype("category")
    out["batch_size"] = out["batch_size"].astype("Int32")
    out["met_accuracy"] = out["met_accuracy"].astype("boolean")
    return out


def _latency(lat: np.ndarray) -> dict[str, float]:
    stats = _stats(lat)
    stats["max"] = float(lat.max()) if len(lat) else float("nan")
    return stats


def _figures(df: pd.DataFrame, window_s: float) -> dict[str, Any]:
    n = len(df)
    ok = (df["status"] == 200).to_numpy()
    met_lat = ok & (df["latency_ms"] <= df["lat_req_ms"]).to_numpy()
    good = met_lat
    out: dict[str, Any] = {"requests": n, "ok": int(ok.sum())}
    attain: dict[str, float] = {"latency": float(met_lat.mean()) if n else float("nan")}
    if "met_accuracy" in df.columns:
        met_acc = df["met_accuracy"].fillna(False).to_numpy(dtype=bool) & ok
        good = good & met_acc
        attain["accuracy"] = float(met_acc.mean()) if n else float("nan")
    out["goodput"] = float(good.mean()) if n else float("nan")
    out["goodput_rps"] = float(good.sum()) / window_s if window_s > 0 else float("nan")
    out["slo_attainment"] = attain
    out["latency_ms"] = _latency(df["latency_ms"].to_numpy()[ok])
    return out


def load_summary(records: pd.DataFrame, warmup_s: float = 0.0,
                 wall_time_s: float | None = None) -> dict[str, Any]:
    """summary.json of a load run, in the simulator's terms (:mod:`sim.summary`).

    ``requests``, ``ok``, ``errors`` (by status; ``"0"`` is a transport error),
    ``offered_rps`` and ``throughput_rps`` count every request; the SLO figures (``goodput``:
    the share of requests answered within their latency target by a model meeting their
    accuracy target, where the server's records are joined; ``latency_ms`` of answered
    requests, from the scheduled time) cover requests scheduled from ``warmup_s`` on, as the
    simulator's do.
    """
    n = len(records)
    ok = records["status"] == 200
    last_scheduled = float(records["scheduled_s"].max()) if n else 0.0
    last_done = float(records["done_s"].max()) if n else 0.0
    kept = records[records["scheduled_s"] >= warmup_s]
    window = float(kept["scheduled_s"].max()) - warmup_s if len(kept) else 0.0
    out: dict[str, Any] = {
        "requests": n,
        "ok": int(ok.sum()),
        "errors": {str(k): int(v) for k, v in
                   records.loc[~ok, "status"].value_counts().sort_index().items()},
        "offered_rps": n / last_scheduled if last_scheduled > 0 else float("nan"),
        "throughput_rps": int(ok.sum()) / last_done if last_done > 0 else float("nan"),
        "warmup_s": warmup_s,
        "measured": _figures(kept, window),
        "send_lag_ms": _latency(records["send_lag_ms"].to_numpy()),
    }
    if "model" in records.columns:
        served = kept.loc[kept["model"].notna(), "model"].astype(str)
        counts = served.value_counts().sort_index()
        out["served_by"] = {str(k): int(v) for k, v in counts.items()}
        out["model_share"] = {str(k): int(v) / len(served) for k, v in counts.items()}
        out["server_latency_ms"] = _latency(kept["server_latency_ms"].dropna().to_numpy())
        out["mean_batch_size"] = (float(kept["batch_size"].dropna().mean())
                                  if kept["batch_size"].notna().any() else float("nan"))
    out["tenants"] = {str(t): _figures(g, window)
                      for t, g in kept.groupby("tenant", observed=True)}
    first = records.loc[~ok & (records["error"] != ""), "error"]
    if len(first):
        out["first_error"] = str(first.iloc[0])
    if wall_time_s is not None:
        out["wall_time_s"] = wall_time_s
    return out


def run_load(url: str, schedule: pd.DataFrame, inputs: np.ndarray, *, warmup_s: float = 0.0,
             max_connections: int = 256, progress: bool = False,
             credentials: Credentials | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replay ``schedule`` against ``url``, join the server's records where it keeps them,
    and summarise: ``(records, summary)``."""
    if urlsplit(url).scheme != "http":
        raise UserError(f"--target {url}: the load generator speaks http:// only")
    start = time.perf_counter()
    creds = credentials or Credentials.resolve()
    files = raise_open_file_limit()  # one descriptor per connection, and some to spare
    if max_connections > files - 64:
        raise UserError(f"--max-connections {max_connections}: this process may open at most "
                        f"{files} files; use at most {files - 64}")
    records = run_precise(replay(url, schedule, inputs, max_connections=max_connections,
                                 progress=progress, credentials=creds))
    wall = time.perf_counter() - start
    try:
        server = fetch_server_records(url, creds.admin_token)
    except httpx.HTTPError as e:  # the run is kept; only the join is lost
        server, note = None, f"unavailable ({type(e).__name__}: {e})"
    except UserError as e:
        server, note = None, f"unavailable ({e})"
    else:
        note = ("joined" if server is not None else
                "not fetched (no admin token: --admin-token joins the server's records)"
                if creds.admin_token is None else
                "off (the server keeps none)")
    if server is not None:
        records = join_server_records(records, server)
    summary = load_summary(records, warmup_s, wall)
    summary["server_records"] = note
    return records, summary


def load_table(s: dict[str, Any]) -> str:
    """The headline figures of a load summary, one per line."""
    m = s["measured"]
    lat = m["latency_ms"]
    errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"
    rows = [
        ("requests", f"{s['requests']:,} ({s['ok']:,} ok; errors {errors})"),
        ("offered / achieved", f"{s['offered_rps']:.1f} / {s['throughput_rps']:.1f} req/s"),
        ("goodput", f"{m['goodput']:.3f}  ({m['goodput_rps']:.1f} req/s)"),
        ("latency ms: mean p50 p95 p99 max",
         f"{lat['mean']:.2f} {lat['p50']:.2f} {lat['p95']:.2f} {lat['p99']:.2f} "
         f"{lat['max']:.2f}"),
        ("send lag ms: p50 max",
         f"{s['send_lag_ms']['p50']:.2f} {s['send_lag_ms']['max']:.2f}"),
    ]
    if "model_share" in s:
        rows.append(("served by", ", ".join(f"{k}={v:.2f}" for k, v in
                                            s["model_share"].items())))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
