"""``zoosim load``: replay a simulate scenario's workload open-loop against a live server
(README, "Load generator"); the work is in :mod:`serve.loadgen`."""

from __future__ import annotations

from pathlib import Path

import click

from serve.auth import Credentials, credential_options, require_keys


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", required=True, metavar="URL",
              help="The live server, e.g. http://127.0.0.1:8000 (zoosim serve).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for requests.parquet and summary.json.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field, e.g. --set requests=1000 (repeatable).")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most requests on the wire at once (later ones queue, and the wait counts).")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@credential_options
def load(config: Path, target: str, out_dir: Path, overrides: tuple[str, ...],
         max_connections: int, quiet: bool, api_keys: tuple[str, ...],
         admin_token: str | None) -> None:
    """Send the requests of scenario CONFIG (its tenants' arrivals and SLOs, seeded as in
    simulate) to the server at --target, open-loop, with inputs from the test split of the
    zoo profile's dataset; write per-request records and a summary to OUT."""
    from serve.client import check_admin_token, server_info
    from serve.loadgen import load_table, run_load
    from sim.config import load_scenario
    from sim.errors import UserError
    from sim.output import make_dir, write_json, write_table
    from sim.profiles import load_profile
    from sim.report import nothing_measured
    from workloads.schedule import request_schedule
    from zoo_profiles.datasets import load_dataset

    scenario = load_scenario(config, overrides=overrides)
    base_dir = config.resolve().parent
    meta = load_profile(scenario.zoo.profile, base_dir).metadata
    if not meta.dataset:
        raise UserError(f"{config}: zoo profile {scenario.zoo.profile!r} names no dataset "
                        "(metadata.dataset), so there are no inputs to send")
    info = server_info(target)
    creds = Credentials.resolve(api_keys, admin_token)
    require_keys(info, creds, target, len(scenario.tenants))
    check_admin_token(target, creds.admin_token)
    inputs = load_dataset(meta.dataset, split_seed=meta.split_seed).test.x
    shape = [int(v) for v in info["input_shape"]]
    if list(inputs.shape[1:]) != shape:
        raise UserError(f"--target {target}: the server takes inputs of shape {shape}, but "
                        f"dataset {meta.dataset!r} has {list(inputs.shape[1:])}")
    schedule = request_schedule(scenario, base_dir)
    make_dir(out_dir)
    records, summary = run_load(target, schedule, inputs, warmup_s=scenario.warmup_s,
                                max_connections=max_connections, progress=not quiet,
                                credentials=creds)
    write_table(out_dir / "requests.parquet", records)
    write_json(out_dir / "summary.json", summary)
    warning = nothing_measured(summary["measured"]["requests"], summary["requests"],
                               scenario.warmup_s)
    if warning:
        click.echo(warning, err=True)
    if not quiet:
        click.echo(load_table(summary))
        click.echo(f"wrote {out_dir}/")
