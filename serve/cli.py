"""``zoosim serve``: the live server (README, "Live serving")."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--zoo", help="Zoo profile (a shipped name or a path); default mnist5k-cpu.")
@click.option("--policy", help="Selection policy: infaas | pareto.")
@click.option("--defense", help="Defense type (its parameters: --set defense.KEY=VALUE).")
@click.option("--workers", type=int,
              help="Workers (one per simulated worker): processes by default, threads with "
              "--set api.executor=thread.")
@click.option("--max-batch", type=int, help="Largest batch a worker runs.")
@click.option("--batch-timeout-ms", type=float, help="How long a batch waits to fill.")
@click.option("--host", help="Address to bind (default 127.0.0.1, loopback only).")
@click.option("--port", type=int, help="Port (default 8000; 0 picks a free one).")
@click.option("--outputs", type=click.Choice(["probabilities", "labels"]),
              help="Answer with class probabilities (default) or top-1 labels only.")
@click.option("--rate-limit", type=float, metavar="RPS",
              help="Per-client request rate limit (token bucket, burst = 1 s of it).")
@click.option("--records", is_flag=True, default=None,
              help="Keep ground-truth records and serve them at GET /admin/records "
              "(experiments only: they name the model behind each answer).")
@click.option("--model-api", is_flag=True, default=None,
              help="Accept a model name in requests (INFaaS's model-variant queries).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any field, e.g. --set defense.accuracy_sd=2 (repeatable; VALUE "
              "is YAML).")
def serve(config: Path | None, zoo: str | None, policy: str | None, defense: str | None,
          workers: int | None, max_batch: int | None, batch_timeout_ms: float | None,
          host: str | None, port: int | None, outputs: str | None, rate_limit: float | None,
          records: bool | None, model_api: bool | None, overrides: tuple[str, ...]) -> None:
    """Serve the zoo over HTTP (POST /v1/classify) with the simulator's policy and defense.

    CONFIG is an optional scenario YAML (zoo, cluster, policy, defense, seed, api); the options
    override it. Stop with Ctrl-C.
    """
    from serve.config import ServeScenario
    from serve.live import servable_profile
    from serve.server import serve_forever
    from sim.config import apply_override, parse_scenario, read_yaml

    data = read_yaml(config) if config is not None else {"zoo": {"profile": "mnist5k-cpu"}}
    flags = {"zoo.profile": zoo, "policy.type": policy, "defense.type": defense,
             "cluster.workers": workers, "cluster.max_batch": max_batch,
             "cluster.batch_timeout_ms": batch_timeout_ms, "api.host": host, "api.port": port,
             "api.outputs": outputs, "api.rate_limit_rps": rate_limit, "api.records": records,
             "api.model_api": model_api}
    assignments = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if isinstance(data, dict):
        for o in [*assignments, *overrides]:
            apply_override(data, o)
    base_dir = config.resolve().parent if config is not None else Path.cwd()
    scenario = parse_scenario(data, base_dir, str(config or "serve"), ServeScenario)
    assert isinstance(scenario, ServeScenario)
    servable_profile(scenario, base_dir)
    if scenario.api.host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {scenario.api.host}, beyond this machine", err=True)

    def announce(url: str) -> None:
        click.echo(f"zoosim serve: {scenario.zoo.profile} ({scenario.policy.type}, defense "
                   f"{scenario.defense.type}) listening on {url}", err=False)

    serve_forever(scenario, base_dir, announce)


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for simcheck.json/.md, calibration and per-load "
              "records (a rerun resumes).")
@click.option("--loads", default="100,200,300", show_default=True,
              help="Total request rates to compare at (req/s, comma-separated).")
@click.option("--profile", default=None,
              help="A profile measured on this machine [default: measure one now].")
@click.option("--requests", type=int, default=None,
              help="Requests per load [default: the scenario's].")
@click.option("--calibration-requests", type=int, default=2000, show_default=True,
              help="Requests of the calibration run at each load (an independent run of the "
              "same workload).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def simcheck(config: Path, out_dir: Path, loads: str, profile: str | None,
             requests: int | None, calibration_requests: int, quiet: bool) -> None:
    """Simulator against reality: serve CONFIG live, replay its workload at each load, simulate
    the same requests, and report the errors (README, "Simulator against reality")."""
    from serve.simcheck import run_simcheck, table
    from sim.errors import UserError

    try:
        rates = [float(v) for v in loads.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--loads {loads!r}: expected numbers, e.g. 100,250,400") from None
    if not rates or min(rates) <= 0:
        raise UserError(f"--loads {loads!r}: expected positive request rates")
    if calibration_requests < 10:
        raise UserError("--calibration-requests must be >= 10")
    results = run_simcheck(config, out_dir, rates, profile=profile, requests=requests,
                           calibration_requests=calibration_requests, progress=not quiet,
                           echo=click.echo)
    click.echo(table(results))
