"""The simulator against reality: the same workload served live and simulated (issues 7, 18).

1. **Profile** the machine once: the zoo's batch times (``zoosim zoo profile``; or a given
   profile) and the front-end's CPU costs (``zoosim frontend profile``, a microbenchmark at
   low load, :mod:`serve.frontend_probe`; or the one found beside the zoo profile), saved
   beside each other. Nothing is fitted to the loads compared: both sides run the
   scenario's own zoo settings, and the simulator adds the probe's costs.
2. **Serve** the scenario live (``zoosim serve``, a separate process, records on), one
   server for the whole check.
3. For each repeat, at each load (repeat-major; repeat ``r`` uses seed + ``r``: other
   requests of the same workload), **replay** the requests open-loop (:mod:`serve.loadgen`) and
   **simulate** the very same requests with the front-end model (:mod:`sim.frontend`: the
   server's event loop, the worker processes and the load generator sharing the machine's
   cores). A run lasts at least :data:`MIN_RUN_S` so that past saturation the backlog shows.
4. **Compare** (:mod:`serve.simcheck_figures`): mean, P50 and P99 latency, goodput,
   sustained throughput and the saturation verdict, per repeat and over the repeats
   (mean, min-max, standard deviation), with the verdict against issue 18's bounds.
5. **Saturation point**: predicted by bisecting the offered rate in the simulator, measured
   by bisecting it live between the highest load that kept up and the lowest that did not.

Each finished step is written atomically under ``runs/`` and reused by a rerun with the same
settings; ``simcheck.json`` and ``simcheck.md`` hold the result.
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serve.auth import ADMIN_TOKEN_ENV, Credentials, new_key
from serve.simcheck_figures import (
    CPU_KEYS,
    DRIFT_PCT,
    ENGINE_KEYS,
    GOODPUT_POINTS,
    MEAN_ERROR_PCT,
    SPEED_STEP,
    SPEEDS,
    THROUGHPUT_ERROR_PCT,
    bisect_saturation,
    calibration_drift,
    cpu_per_request,
    engine_figures,
    errors,
    figure_missed,
    live_figures,
    load_summary,
    saturation_verdict,
    sim_figures,
)
from sim.config import Scenario, parse_scenario, read_yaml
from sim.errors import ConfigError, UserError
from sim.frontend_profile import FrontendProfile, frontend_profile_path, load_frontend_profile
from sim.output import make_dir, write_json, write_table, write_yaml
from sim.profiles import load_profile, resolve_profile_path

RATE_KEY = "rate_rps"
VERSION = 24
"""Bumped when the method changes, so that a rerun does not resume older results (24: the
cores as run queues, :data:`SIM_CPU`)."""
SIM_CPU = "run_queues"
"""The model of the cores the check simulates with (``frontend.cpu``;
:class:`sim.host.RunQueues`, method version 24: processor sharing, until then, slowed the
busy loop past saturation whenever two workers and the client ran besides it, where live it
kept its core; docs/results/simcheck.md). ``cpu: queue`` is simulated too, to compare."""
MIN_RUN_S = 4.0
"""Each run offers at least this many seconds of requests after its warm-up (past
saturation, the backlog must have time to grow)."""
BISECT_SIM_STEPS = 8
BISECT_LIVE_STEPS = 3
CLIENT_CONNECTIONS = 256
"""The load generator's cap on requests on the wire (``zoosim load``'s default)."""


# -- the live server, in its own process ----------------------------------------------------------
@dataclass
class LiveProcess:
    """A live server started by :func:`live_server_process`."""

    url: str
    pid: int


@contextmanager
def live_server(config: Path, log: Path, timeout_s: float = 120.0,
                admin_token: str | None = None) -> Iterator[str]:
    """``zoosim serve CONFIG`` in a child process; yields its URL
    (:func:`live_server_process`)."""
    with live_server_process(config, log, timeout_s, admin_token) as proc:
        yield proc.url


@contextmanager
def live_server_process(config: Path, log: Path, timeout_s: float = 120.0,
                        admin_token: str | None = None) -> Iterator[LiveProcess]:
    """``zoosim serve CONFIG`` in a child process (its own interpreter: the load generator's
    work never competes for the server's GIL), its stderr in ``log``; yields its URL and
    process id; SIGTERM on exit. ``admin_token`` becomes its admin token (for the
    records)."""
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
            yield LiveProcess(line[0].rsplit(" ", 1)[-1].strip(), proc.pid)
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


def _stored(path: Path, digest: str) -> dict[str, Any] | None:
    """A finished step's stored result (for a resumed run), nulls read back as NaN."""
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("digest") == digest:
            out: dict[str, Any] = _nulls_as_nan(data)
            return out
    return None


def _nulls_as_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _nulls_as_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls_as_nan(v) for v in value]
    return value


class Check:
    """One simcheck: its settings, the live server and the runs (module docstring)."""

    def __init__(self, config: Path, out_dir: Path, *, profile: str | None,
                 frontend_profile: str | None, requests: int | None, repeats: int,
                 progress: bool, echo: Callable[[str], None], probe_repeats: int = 30,
                 probe_passes: int | None = None) -> None:
        data = read_yaml(config)
        if not isinstance(data, dict):
            raise ConfigError(f"{config}: a scenario is a YAML mapping")
        self.base_dir = config.resolve().parent
        parse_scenario(data, self.base_dir, str(config))
        at_rate(data, 1.0, None)  # every tenant must have a rate
        self.config = config
        self.out = out_dir
        self.progress, self.echo = progress, echo
        self.requests = requests
        self.repeats = repeats
        self.probe_repeats = probe_repeats
        self.probe_passes = probe_passes
        make_dir(out_dir)
        zoo = _profile(data["zoo"]["profile"], self.base_dir, profile, out_dir, progress, echo)
        self.zoo_path = zoo
        self.zoo = load_profile(zoo)
        data["zoo"]["profile"] = str(zoo)
        data.pop("frontend", None)
        self.data = data
        self.serve_data = {k: v for k, v in data.items()
                           if k not in ("tenants", "requests", "duration_s", "warmup_s")}
        self.serve_data["api"] = {**data.get("api", {}), "port": 0, "records": True}
        self.token = new_key()
        self.creds = Credentials(admin_token=self.token)
        self.fe_path = self._frontend_profile(frontend_profile)
        self.fe = load_frontend_profile(self.fe_path, "--frontend-profile")
        self.digest = _digest(VERSION, SPEEDS, data, requests, self.fe.model_dump(),
                              hashlib.sha256(self.zoo_path.read_bytes()).hexdigest())
        """What a stored run must match: the method (the band's speeds too), the whole
        scenario, the profiles."""
        from zoo_profiles.datasets import load_dataset

        meta = self.zoo.metadata
        self.inputs = load_dataset(meta.dataset or "mnist5k", split_seed=meta.split_seed).test.x
        self.url: str | None = None
        self.pid = 0
        """The live server's process (once started)."""
        self.server = ExitStack()
        """The live server, once started (one for the whole check)."""
        self.next_id = -1

    # -- the machine's profiles ------------------------------------------------------------
    def _serve_config(self, name: str, data: dict[str, Any]) -> Path:
        path = self.out / "serve" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data)  # JSON is YAML
        return path

    def _frontend_profile(self, given: str | None) -> Path:
        """The front-end profile: given, found beside the zoo profile, or measured now
        (then saved beside the zoo profile when that is this check's, else under
        ``profile/``)."""
        if given is not None:
            path = Path(given)
            if not path.is_file():
                raise UserError(f"--frontend-profile {given}: no such file")
            return path
        beside = frontend_profile_path(self.zoo_path)
        if not beside.is_file() and not beside.parent.resolve().is_relative_to(
                self.out.resolve()):
            beside = self.out / "profile" / beside.name
        if beside.is_file():
            # measured before: by this method, or refused (an older probe's costs would be
            # charged by rules they were not measured for)
            from serve.frontend_fit import PROBE_VERSION

            found = load_frontend_profile(beside, str(beside)).probe_version
            if found < PROBE_VERSION:
                raise UserError(
                    f"{beside}: measured by front-end probe method version {found}, this is "
                    f"{PROBE_VERSION}: delete it to measure again, or pass it with "
                    "--frontend-profile to use it as it is")
            self.echo(f"using the front-end profile {beside} (delete it to measure again)")
            return beside
        self.echo("profiling the front-end on this machine (zoosim frontend profile)")
        from serve.frontend_probe import probe_config, scenario_targets

        measure_frontend(self._serve_config("probe", probe_config(self.serve_data)),
                         self.out / "serve",
                         self.zoo, beside, zoo_name=self.zoo_path.name,
                         repeats=self.probe_repeats, passes=self.probe_passes,
                         targets=scenario_targets(self.data, self.base_dir), echo=self.echo)
        return beside

    # -- runs ------------------------------------------------------------------------------
    def scenario(self, rate: float, repeat: int, cpu: str = SIM_CPU,
                 speed: float = 1.0) -> Scenario:
        """The workload at ``rate`` (seed + ``repeat``), with the front-end model on (its
        cores shared as ``cpu`` says, the machine ``speed`` times the profiled one's)."""
        warmup = float(self.data.get("warmup_s") or 0.0)
        n = max(self.requests or int(self.data.get("requests") or 0),
                int((warmup + MIN_RUN_S) * rate))
        d = at_rate(self.data, rate, n)
        d["seed"] = int(d.get("seed", 0)) + repeat
        d["frontend"] = {"profile": str(self.fe_path.resolve()),
                         "cores": self.fe.machine.cores, "cpu": cpu, "speed": speed,
                         "client": {"max_connections": CLIENT_CONNECTIONS}}
        return parse_scenario(d, self.base_dir, str(self.config))

    def simulate(self, sc: Scenario) -> tuple[pd.DataFrame, dict[str, float]]:
        """The simulated records and each modeled process's CPU (ms in all)."""
        from sim.run import Simulation

        sim = Simulation(sc, self.base_dir)
        frame = sim.run().frame
        fe = sim.system.frontend
        return frame, fe.cpu_ms() if fe is not None else {}

    def live(self, sc: Scenario) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
        """The live records (the load generator's joined with the server's), the server's
        own and each process's CPU over the replay (ms in all; the client's includes
        encoding the bodies)."""
        from serve.client import fetch_server_records
        from serve.loadgen import join_server_records, replay
        from serve.proc_cpu import live_cpu_ms
        from sim.clock import run_precise
        from workloads.schedule import request_schedule

        if self.url is None:
            proc = self.server.enter_context(live_server_process(
                self._serve_config("check", self.serve_data), self.out / "serve" / "check.log",
                admin_token=self.token))
            self.url, self.pid = proc.url, proc.pid
        schedule = request_schedule(sc)
        with live_cpu_ms(self.pid) as cpu:
            live = run_precise(replay(self.url, schedule, self.inputs,
                                      max_connections=CLIENT_CONNECTIONS,
                                      progress=self.progress, credentials=self.creds))
        server = fetch_server_records(self.url, self.token, after=self.next_id)
        if server is None:
            raise UserError("simcheck: the live server keeps no records")
        if len(server):
            self.next_id = max(self.next_id, int(server["id"].max()))
        return join_server_records(live, server), server, cpu

    def run(self, rate: float, repeat: int, kind: str) -> dict[str, Any]:
        """One run's figures, live and simulated, resumed when already done."""
        digest = _digest(self.digest, rate, repeat, kind)
        path = self.out / "runs" / f"{kind}-{rate:g}-{repeat}.json"
        done = _stored(path, digest)
        if done is not None:
            return done
        sc = self.scenario(rate, repeat)
        sim, sim_cpu = self.simulate(sc)
        row: dict[str, Any] = {"digest": digest, "rate_rps": rate, "repeat": repeat,
                               "sim": {**sim_figures(sim, sc.warmup_s),
                                       "cpu": cpu_per_request(sim_cpu, len(sim)),
                                       "engine": engine_figures(sim, "server_latency_ms")},
                               # the other model of the cores (docs/serving.md), for comparison
                               "sim_queue": sim_figures(
                                   self.simulate(self.scenario(rate, repeat, "queue"))[0],
                                   sc.warmup_s)}
        if kind == "load":  # how far a calibration SPEED_STEP off moves the prediction
            row["sim_speed"] = {f"{speed:g}": sim_figures(
                self.simulate(self.scenario(rate, repeat, speed=speed))[0], sc.warmup_s)
                for speed in SPEEDS}
        if kind != "predict":
            live, server, live_cpu = self.live(sc)
            row["live"] = {**live_figures(live, sc.warmup_s),
                           "cpu": cpu_per_request(live_cpu, len(live)),
                           "engine": engine_figures(server, "latency_ms")}
            row["errors"] = errors(row["live"], row["sim"])
            row["errors_queue"] = errors(row["live"], row["sim_queue"])
            if kind == "load":
                write_table(self.out / "runs" / f"live-{rate:g}-{repeat}.parquet",
                            live.astype({"tenant": str, "model": str}))
                write_table(self.out / "runs" / f"sim-{rate:g}-{repeat}.parquet", sim)
        write_json(path, row)
        return row

    def check(self, loads: list[float]) -> dict[str, Any]:
        by_load: dict[float, list[dict[str, Any]]] = {}
        with ExitStack() as self.server:  # started by the first live run (none on a resume)
            # repeat-major: a slow spell of the machine spreads over the loads instead of
            # falling on all the repeats of one
            for r in range(self.repeats):
                for rate in loads:
                    row = self.run(rate, r, "load")
                    by_load.setdefault(rate, []).append(row)
                    self.echo(_line(row))
            summaries = [load_summary(rate, rows) for rate, rows in by_load.items()]
            measured = self._measured_saturation(summaries)
        self.url = None
        predicted = self._predicted_saturation(loads)
        return {"config": str(self.config), "profile": str(self.zoo_path),
                "frontend_profile": str(self.fe_path), "repeats": self.repeats,
                "frontend": self.fe.model_dump(), "loads": summaries,
                "calibration": calibration_drift(summaries),
                "runs": {f"{rate:g}": rows for rate, rows in by_load.items()},
                "saturation": {**saturation_verdict(measured, predicted),
                               "sim_at_loads": [s["sim"]["saturated"] for s in summaries],
                               "queue": saturation_verdict(
                                   measured, self._predicted_saturation(loads, "sim_queue"))},
                "bounds": {"mean_error_pct": MEAN_ERROR_PCT, "goodput_points": GOODPUT_POINTS,
                           "throughput_error_pct": THROUGHPUT_ERROR_PCT}}

    def _measured_saturation(self, summaries: list[dict[str, Any]]) -> float | None:
        """Live bisection between the highest load that kept up and the lowest above it
        that did not (None when no load saturated the live system, or none kept up)."""
        kept = [s["rate_rps"] for s in summaries if not s["live"]["saturated"]]
        lost = [s["rate_rps"] for s in summaries if s["live"]["saturated"]]
        if not kept or not lost:
            return None
        lo = max(kept)
        above = [r for r in lost if r > lo]
        if not above:
            return None
        hi = min(above)
        return bisect_saturation(
            lambda rate: bool(self.run(rate, 0, "bisect")["live"]["saturated"]),
            lo, hi, BISECT_LIVE_STEPS)

    def _predicted_saturation(self, loads: list[float], key: str = "sim") -> float | None:
        """Simulated bisection over [min load / 4, 4 x max load] (None: not bracketed, i.e.
        saturated already at the bottom or not even at the top); ``key``: ``sim``
        (:data:`SIM_CPU`) or ``sim_queue`` (core queue)."""
        def sat(rate: float) -> bool:
            return bool(self.run(rate, 0, "predict")[key]["saturated"])

        lo, hi = min(loads) / 4, max(loads) * 4
        if sat(lo) or not sat(hi):
            return None
        return bisect_saturation(sat, lo, hi, BISECT_SIM_STEPS)


def measure_frontend(config: Path, log_dir: Path, zoo: Any, out: Path, *, zoo_name: str,
                     repeats: int = 30, passes: int | None = None,
                     targets: list[tuple[float, float]] | None = None,
                     in_flight: int | None = None,
                     echo: Callable[[str], None] = print) -> FrontendProfile:
    """Serve ``config`` live and probe it (:mod:`serve.frontend_probe`); the profile is
    written to ``out`` (the raw bursts beside it, ``.bursts.json``). ``in_flight``: the
    requests a busy stream keeps in flight (None: the probe's own number)."""
    from serve.frontend_probe import BUSY_IN_FLIGHT, PASSES, probe

    token = new_key()
    log_dir.mkdir(parents=True, exist_ok=True)
    with live_server_process(config, log_dir / "frontend-probe.log",
                             admin_token=token) as proc:
        meta = zoo.metadata
        from zoo_profiles.datasets import load_dataset

        inputs = load_dataset(meta.dataset or "mnist5k", split_seed=meta.split_seed).test.x
        largest = (read_yaml(config).get("cluster") or {}).get("max_batch")
        result, raw = probe(proc.url, proc.pid, zoo, inputs, admin_token=token,
                            zoo_profile=zoo_name, repeats=repeats,
                            passes=PASSES if passes is None else passes,
                            targets=targets,
                            in_flight=BUSY_IN_FLIGHT if in_flight is None else in_flight,
                            max_batch=largest, echo=echo)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_yaml(out, result.model_dump())
    write_json(out.with_suffix(".bursts.json"), raw)
    return result


def run_simcheck(config: Path, out_dir: Path, loads: list[float], *,
                 profile: str | None = None, frontend_profile: str | None = None,
                 requests: int | None = None, repeats: int = 3, progress: bool = True,
                 echo: Callable[[str], None] = print, probe_repeats: int = 30,
                 probe_passes: int | None = None) -> dict[str, Any]:
    """The whole check (module docstring); writes ``simcheck.json`` and ``simcheck.md``."""
    check = Check(config, out_dir, profile=profile, frontend_profile=frontend_profile,
                  requests=requests, repeats=repeats, progress=progress, echo=echo,
                  probe_repeats=probe_repeats, probe_passes=probe_passes)
    results = check.check(loads)
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
    lv, sm, e = row["live"], row["sim"], row["errors"]
    return (f"{row['rate_rps']:>7g} req/s #{row['repeat']}: mean {lv['mean_ms']:.2f} ms live, "
            f"{sm['mean_ms']:.2f} sim ({e['mean_pct']:+.1f} %); goodput {lv['goodput']:.3f} vs "
            f"{sm['goodput']:.3f}; throughput {lv['throughput_rps']:.0f} vs "
            f"{sm['throughput_rps']:.0f}/s; saturated {lv['saturated']} vs {sm['saturated']}")


def _pm(s: dict[str, float], fmt: str) -> str:
    """``mean (min-max)`` of a figure over the repeats."""
    if not math.isfinite(s["mean"]):
        return "-"
    return f"{s['mean']:{fmt}} ({s['min']:{fmt}} to {s['max']:{fmt}})"


def _live_sim(figures: dict[str, Any], key: str) -> str:
    """``live / sim`` of one figure (repeat means; ``-`` where unknown)."""
    def one(x: float) -> str:
        return f"{x:.3f}" if math.isfinite(x) else "-"

    return f"{one(figures['live'][key]['mean'])} / {one(figures['sim'][key]['mean'])}"


def table(results: dict[str, Any]) -> str:
    """simcheck.md: one row per load (means over the repeats, their range in brackets)."""
    fe = results["frontend"]["frontend"]
    sat = results["saturation"]
    lines = [
        "# Simulator against the live server",
        "",
        f"Profiles: `{results['profile']}` and `{results['frontend_profile']}` (front-end "
        f"setup {fe['setup_ms']:.3f} ms per wake-up). {results['repeats']} repeats per load "
        "(seed + repeat); figures are means over the repeats, with their range.",
        "",
        "| load req/s | mean ms live / sim | mean error | P50 error | P99 error "
        "| goodput live / sim | throughput /s live / sim | saturated live / sim | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in results["loads"]:
        e = s["errors"]
        lines.append(
            f"| {s['rate_rps']:g} | {s['live']['mean_ms']['mean']:.2f} / "
            f"{s['sim']['mean_ms']['mean']:.2f} | {_pm(e['mean_pct'], '+.1f')} % | "
            f"{_pm(e['p50_pct'], '+.1f')} % | {_pm(e['p99_pct'], '+.1f')} % | "
            f"{s['live']['goodput']['mean']:.3f} / {s['sim']['goodput']['mean']:.3f} | "
            f"{s['live']['throughput_rps']['mean']:.0f} / "
            f"{s['sim']['throughput_rps']['mean']:.0f} | "
            f"{'yes' if s['live']['saturated'] else 'no'} / "
            f"{'yes' if s['sim']['saturated'] else 'no'} | "
            f"{'ok' if s['verdict']['ok'] else 'OUT'}: {s['verdict']['why']} |")
    if all("cpu" in s for s in results["loads"]):
        lines += ["", "CPU per request sent, live / sim (ms; warm-up included): the server's "
                  "event loop and its wake-ups per request, the worker processes (forward "
                  "passes included), the load generator (live: with encoding the bodies); "
                  "and the time each of the three waited, runnable, for a core (live: every "
                  "such wait, schedstat; sim: a wake-up's):",
                  "", "| load req/s | event loop ms | wake-ups | workers ms | client ms "
                  "| loop waited ms | workers waited ms | client waited ms |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in results["loads"]:
            lines.append(f"| {s['rate_rps']:g} | "
                         + " | ".join(_live_sim(s["cpu"], k) for k in CPU_KEYS) + " |")
        drift = results.get("calibration", {})
        pct = drift.get("live_over_charged_pct")
        if pct is not None:
            lines += ["", "Calibration: below saturation the live event loop's CPU per "
                      f"request differed from the model's charge by {pct:+.1f} % (median over "
                      f"{drift['loads']} loads): "
                      + ("held, within " if drift["held"] else "**drifted**, beyond ")
                      + f"{DRIFT_PCT:g} %"
                      + ("." if drift["held"] else ": the machine ran at another speed than "
                         "when the front-end was profiled, and latency errors of that size "
                         "are the machine's, not the model's.")]
    if all("engine" in s for s in results["loads"]):
        lines += ["", "Inside the serving system, live / sim (warm-up included): the mean "
                  "latency from admission to the batch done, the mean time a batch held its "
                  "worker (its answer read back included), the mean requests per batch:", "",
                  "| load req/s | server latency ms | batch ms | batch size |",
                  "|---:|---:|---:|---:|"]
        for s in results["loads"]:
            lines.append(f"| {s['rate_rps']:g} | "
                         + " | ".join(_live_sim(s["engine"], k) for k in ENGINE_KEYS) + " |")
    if all("errors_queue" in s for s in results["loads"]):
        lines += ["", "The other model of the cores (`cpu: queue`, docs/serving.md), same runs:",
                  "", "| load req/s | mean error | goodput error points | throughput error "
                  "| saturated (sim) |", "|---:|---:|---:|---:|---|"]
        for s in results["loads"]:
            q = s["errors_queue"]
            lines.append(f"| {s['rate_rps']:g} | {_pm(q['mean_pct'], '+.1f')} % | "
                         f"{_pm(q['goodput_points'], '+.1f')} | "
                         f"{_pm(q['throughput_pct'], '+.1f')} % | "
                         f"{'yes' if s['sim_queue_saturated'] else 'no'} |")
        qs = sat.get("queue", {})
        if qs.get("predicted_rps") is not None:
            lines += ["", f"Saturation point predicted with `cpu: queue`: "
                          f"{qs['predicted_rps']:.0f} req/s."]
    if all("speed_band" in s for s in results["loads"]):
        lines += ["", "Sensitivity to the calibration: every load simulated again with every "
                  "CPU cost of the profile divided by "
                  + " and by ".join(f"{v:g}" for v in SPEEDS)
                  + " (`frontend.speed`, the machine "
                  f"{100 * SPEED_STEP:g} % slower or faster than profiled): the band that "
                  "spans, below saturation of the mean latency (ms), past it of the sustained "
                  "throughput (/s), half its width against the prediction, and whether the "
                  "live figure lies inside it:", "",
                  "| load req/s | figure | live | sim, band | +/- % | live inside |",
                  "|---:|---|---:|---:|---:|---|"]
        for s in results["loads"]:
            b = s["speed_band"]
            fmt = ".0f" if b["figure"] == "throughput_rps" else ".2f"
            lines.append(f"| {s['rate_rps']:g} | {b['figure']} | "
                         f"{s['live'][b['figure']]['mean']:{fmt}} | "
                         f"{s['sim'][b['figure']]['mean']:{fmt}} "
                         f"({b['low']:{fmt}} to {b['high']:{fmt}}) | {b['shift_pct']:.1f} | "
                         f"{'yes' if b['live_inside'] else 'no'} |")
        misses = [s for s in results["loads"] if figure_missed(s)]
        inside = sum(s["speed_band"]["live_inside"] for s in misses)
        lines += ["", f"Loads out of bounds on the band's figure: {len(misses)}, of which "
                  f"{inside} inside their band (a calibration that far off would explain "
                  "those)."]
    m, p = sat["measured_rps"], sat["predicted_rps"]
    lines += ["", "Saturation point: measured "
              + (f"{m:.0f} req/s" if m is not None and math.isfinite(m) else "not bracketed")
              + ", predicted " + (f"{p:.0f} req/s" if p is not None and math.isfinite(p)
                                  else "not found")
              + (f" ({sat['error_pct']:+.1f} %: {'ok' if sat['ok'] else 'OUT'})"
                 if sat["error_pct"] is not None and math.isfinite(sat["error_pct"]) else "")
              + "."]
    return "\n".join(lines) + "\n"
