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
              help="Request rate limit per tenant key (auth on) or per peer address (token "
              "bucket, burst = 1 s of it).")
@click.option("--records", is_flag=True, default=None,
              help="Keep ground-truth records and serve them at GET /admin/records to the "
              "admin token (experiments: they name the model behind each answer).")
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
    from serve.auth import ADMIN_TOKEN_ENV
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

    def announce(url: str, admin_token: str | None) -> None:
        if admin_token is not None:
            click.echo(f"admin token (GET /admin/*; set {ADMIN_TOKEN_ENV} to choose it): "
                       f"{admin_token}", err=True)
        click.echo(f"zoosim serve: {scenario.zoo.profile} ({scenario.policy.type}, defense "
                   f"{scenario.defense.type}) listening on {url}", err=False)

    serve_forever(scenario, base_dir, announce)


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for simcheck.json/.md, calibration and per-load "
              "records (a rerun resumes).")
@click.option("--loads", default="100,200,300,400,1600,3200", show_default=True,
              help="Total request rates to compare at (req/s, comma-separated); include one "
              "past saturation to measure the saturation point.")
@click.option("--profile", default=None,
              help="A zoo profile measured on this machine [default: measure one now].")
@click.option("--frontend-profile", default=None,
              help="A front-end profile measured on this machine [default: the one beside "
              "the zoo profile, or measure one now].")
@click.option("--requests", type=int, default=None,
              help="Requests per run [default: the scenario's; at least 4 s of them].")
@click.option("--repeats", type=int, default=3, show_default=True,
              help="Runs per load (repeat r uses seed + r).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def simcheck(config: Path, out_dir: Path, loads: str, profile: str | None,
             frontend_profile: str | None, requests: int | None, repeats: int,
             quiet: bool) -> None:
    """Simulator against reality: serve CONFIG live, replay its workload at each load, simulate
    the same requests with the front-end model, and report the errors, the saturation
    verdicts and the saturation point (docs/serving.md, "Simulator against reality")."""
    from serve.simcheck import run_simcheck, table
    from sim.errors import UserError

    try:
        rates = [float(v) for v in loads.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--loads {loads!r}: expected numbers, e.g. 100,250,400") from None
    if not rates or min(rates) <= 0:
        raise UserError(f"--loads {loads!r}: expected positive request rates")
    if repeats < 1:
        raise UserError("--repeats must be >= 1")
    results = run_simcheck(config, out_dir, sorted(set(rates)), profile=profile,
                           frontend_profile=frontend_profile, requests=requests,
                           repeats=repeats, progress=not quiet, echo=click.echo)
    click.echo(table(results))


@click.group()
def frontend() -> None:
    """The HTTP front-end's costs on this machine (the simulator's front-end model)."""


@frontend.command("profile")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--zoo", default=None, help="Zoo profile (a shipped name or a path) [default: "
              "the config's, else mnist5k-cpu].")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where to write the profile [default: beside the zoo "
              "profile when that is a file of yours, <zoo>-frontend.yaml; else in the current "
              "folder].")
@click.option("--repeats", type=int, default=30, show_default=True,
              help="Rounds of bursts (each round: 1, 2, 4 and 8 requests, ordinary and "
              "refused).")
@click.option("--passes", type=int, default=3, show_default=True,
              help="Whole probes, one after the other; the median one is kept (the lower "
              "middle of an even number; a VM's speed drifts).")
@click.option("--in-flight", type=int, default=None,
              help="Requests each busy stream keeps in flight [default: 64]; to study how "
              "the loop's cost per request depends on it (needs -o). Each sender sends at "
              "least 8 (heavy streams 2).")
@click.option("--max-batch", type=int, default=None,
              help="The probed server's largest batch [default: the config's, at least 9]; "
              "the busy streams' batches grow with it, bursts never fill one (needs -o).")
def frontend_profile_cmd(config: Path | None, zoo: str | None, out: Path | None,
                         repeats: int, passes: int, in_flight: int | None,
                         max_batch: int | None) -> None:
    """Measure the front-end's CPU costs per request, per batch and per wake-up on this
    machine, against a live server of CONFIG (a serve scenario; default: mnist5k-cpu, one
    worker). Method: docs/serving.md, "The front-end model"."""
    from serve.frontend_probe import (
        check_in_flight,
        check_max_batch,
        probe_config,
        scenario_targets,
    )
    from serve.simcheck import measure_frontend
    from sim.config import parse_scenario, read_yaml
    from sim.errors import UserError
    from sim.frontend_profile import frontend_profile_path
    from sim.output import write_json
    from sim.profiles import PROFILE_DIR, load_profile, resolve_profile_path

    if repeats < 2:
        raise UserError("--repeats must be >= 2")
    if passes < 1:
        raise UserError("--passes must be >= 1")
    if in_flight is not None:
        from sim.clock import raise_open_file_limit

        check_in_flight(in_flight, raise_open_file_limit())
    if max_batch is not None:
        check_max_batch(max_batch)
    if (in_flight is not None or max_batch is not None) and out is None:
        raise UserError("--in-flight and --max-batch need -o: the default place is where "
                        "zoosim simcheck looks for this machine's profile")
    data = read_yaml(config) if config is not None else {"zoo": {"profile": "mnist5k-cpu"}}
    if not isinstance(data, dict):
        raise UserError(f"{config}: a scenario is a YAML mapping")
    base_dir = config.resolve().parent if config is not None else Path.cwd()
    if zoo is not None:
        data.setdefault("zoo", {})["profile"] = zoo
    from serve.config import ServeScenario

    parse_scenario(data, base_dir, str(config or "frontend profile"), ServeScenario)
    zoo_path = resolve_profile_path(data["zoo"]["profile"], base_dir)
    data["zoo"]["profile"] = str(zoo_path)
    serve_data = {k: v for k, v in data.items()
                  if k not in ("tenants", "requests", "duration_s", "warmup_s", "frontend")}
    serve_data["api"] = {**data.get("api", {}), "port": 0, "records": True}
    if out is None:
        out = (frontend_profile_path(zoo_path) if zoo_path.parent != PROFILE_DIR
               else Path.cwd() / frontend_profile_path(zoo_path).name)
    work = out.parent / f".{out.stem}-probe"
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "serve.yaml"
    write_json(cfg, probe_config(serve_data, max_batch=max_batch))
    result = measure_frontend(cfg, work, load_profile(zoo_path), out,
                              zoo_name=zoo_path.name, repeats=repeats, passes=passes,
                              targets=scenario_targets(data, base_dir), in_flight=in_flight,
                              echo=lambda m: click.echo(m, err=True))
    f = result.frontend
    c = result.client
    client_ms = c.send.mean_ms + c.receive.mean_ms if c is not None else 0.0
    click.echo(f"{out}: ingress {f.ingress.mean_ms:.3f} ms, dispatch {f.dispatch.mean_ms:.3f} "
               f"ms per batch, egress {f.egress.mean_ms:.3f} ms, setup {f.setup_ms:.3f} ms per "
               f"wake-up; worker {result.worker.dispatch_ms:.3f} ms per batch + "
               f"{result.worker.setup_ms:.3f} per wake-up; client {client_ms:.3f} ms per "
               "request")


@click.command()
@click.argument("tenant")
@click.option("--keys-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Add the key's SHA-256 to this keys file (YAML tenant: sha256; created if "
              "missing) instead of printing the line.")
def keygen(tenant: str, keys_file: Path | None) -> None:
    """Make an API key for TENANT: the key is printed once (give it to the tenant); the
    server keeps only its SHA-256 (api.keys or api.keys_file)."""
    from serve.auth import check_keys, digest, new_key, read_keys_file
    from sim.errors import UserError
    from sim.output import atomic_write

    key = new_key()
    h = digest(key)
    check_keys({tenant: h}, "TENANT")
    if keys_file is None:
        click.echo(f"key: {key}")
        click.echo(f"api.keys entry: {tenant}: {h}")
        return
    keys = read_keys_file(keys_file) if keys_file.exists() else {}
    if tenant in keys:
        raise UserError(f"{keys_file}: tenant {tenant!r} has a key already (remove its line "
                        "to replace it)")
    keys[tenant] = h
    check_keys(keys, str(keys_file))
    text = "".join(f"{t}: {v}\n" for t, v in keys.items())
    atomic_write(keys_file, lambda p: p.write_text(text))
    click.echo(f"key: {key}")
    click.echo(f"added {tenant} to {keys_file}")
