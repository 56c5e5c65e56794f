"""The ``zoosim`` command line (docs/architecture.md, "Contracts"; docs/cli.md).

Start-up stays fast: heavy modules (pandas, torch) are imported inside the commands that need
them. A user mistake (:class:`sim.errors.UserError`) exits with status 2 and one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from serve.auth import credential_options
from sim.errors import UserError


class UserFacingError(click.ClickException):
    """A UserError shown as ``Error: ...`` with exit status 2."""

    exit_code = 2


class ZoosimGroup(click.Group):
    """Turns user errors raised by any command into exit status 2, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise UserFacingError(str(e)) from None


@click.group(cls=ZoosimGroup)
@click.version_option(package_name="zoosim")
def main() -> None:
    """zoosim: simulate model-zoo inference serving, its extraction attacks and defenses."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for requests.parquet, summary.json, "
              "config.resolved.yaml.")
@click.option("--csv", "as_csv", is_flag=True, help="Write requests.csv instead of Parquet.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field, e.g. --set tenants.0.arrivals.rate_rps=500 "
              "(repeatable; VALUE is YAML).")
@click.option("--records", "records", default="all", show_default=True,
              metavar="all|sample:N|none",
              help="Which records to write: all (streamed to the file as requests finish), "
              "a uniform random sample of N, or none (summary.json only). A requests file "
              "left in OUT by an earlier run (either format) is removed. The summary always "
              "covers every request.")
@click.option("--quiet", is_flag=True, help="No progress bar (shown only on a terminal) and "
              "no table.")
def simulate(config: Path, out_dir: Path, as_csv: bool, overrides: tuple[str, ...],
             records: str, quiet: bool) -> None:
    """Run the scenario CONFIG (YAML) and write its records and summary to OUT."""
    import sys

    from sim.build import frontend_profile_file
    from sim.config import load_scenario
    from sim.output import make_dir, write_json, write_yaml
    from sim.report import nothing_measured, summary_table
    from sim.run import Simulation
    from sim.sinks import parse_records, sink_for

    try:
        parse_records(records)
    except ValueError as e:
        raise click.BadParameter(str(e).removeprefix("records: "),
                                 param_hint="--records") from None
    scenario = load_scenario(config, overrides=overrides)
    sim = Simulation(scenario, config.resolve().parent)
    make_dir(out_dir)  # after the checks (a bad scenario leaves no folder), before the run
    name = "requests.csv" if as_csv else "requests.parquet"
    sink, table = sink_for(records, out_dir / name,
                           lambda: sim.seeds.generator("records", "sample"))
    result = sim.run(progress=not quiet and sys.stderr.isatty(), sink=sink)
    resolved = scenario.model_dump(mode="json")
    resolved["zoo"]["profile"] = sim.profile_ref
    if scenario.frontend is not None:  # a path that holds wherever the file is read from
        resolved["frontend"]["profile"] = str(
            frontend_profile_file(scenario.frontend, config.resolve().parent))
    for stale in ("requests.csv", "requests.parquet"):   # an earlier run's records
        if table is None or stale != name:
            (out_dir / stale).unlink(missing_ok=True)
    if table is not None:
        table.commit()
    write_json(out_dir / "summary.json", result.summary)
    write_yaml(out_dir / "config.resolved.yaml", resolved)
    warning = nothing_measured(result.summary["requests"], result.recorded, scenario.warmup_s)
    if warning:
        click.echo(warning, err=True)
    if not quiet:
        click.echo(summary_table(result.summary))
        click.echo(f"wrote {out_dir}/")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field (as for simulate).")
def validate(config: Path, overrides: tuple[str, ...]) -> None:
    """Check a scenario or attack file (schema, zoo profile, traces, attack target) without
    running it."""
    from attacks.config import AttackScenario
    from sim.config import Scenario, load_scenario, read_yaml
    from sim.run import Simulation

    data = read_yaml(config)
    is_attack = isinstance(data, dict) and "attacker" in data
    scenario = load_scenario(config, AttackScenario if is_attack else Scenario, overrides)
    sim = Simulation(scenario, config.resolve().parent)
    if isinstance(scenario, AttackScenario):
        from attacks.run import resolve_target

        resolve_target(scenario.attacker.target, sim.zoo)
    click.echo(f"{config}: ok" + (" (an attack)" if is_attack else ""))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for attack.json, summary.json, requests.parquet.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set attacker.budget=2000 (repeatable).")
@click.option("--target", "target_url", metavar="URL", default=None,
              help="Attack the live server at URL (e.g. http://127.0.0.1:8000, started with "
              "`zoosim serve`) instead of simulating. The config's zoo must be the server's; "
              "its tenants are ignored (make benign load with a separate load generator); "
              "attacker.start_s is a wall-clock delay. Scores that need the model behind each "
              "answer are null unless the server keeps records (--records). Writes attack.json "
              "(with a `live` block), requests.parquet (the attacker's own requests) and no "
              "summary.json.")
@click.option("--quiet", is_flag=True, help="No progress bar (a bar of inputs sent against "
              "the budget, shown on a terminal while a simulated attack runs) and no table.")
@credential_options
def attack(config: Path, out_dir: Path, overrides: tuple[str, ...], target_url: str | None,
           quiet: bool, api_keys: tuple[str, ...], admin_token: str | None) -> None:
    """Run the attack scenario CONFIG: fingerprint, extract, score (PSML §4).

    Simulated by default; with --target URL against a live server."""
    from attacks.config import AttackScenario
    from sim.config import load_scenario
    from sim.output import make_dir, write_json, write_table, write_yaml
    from sim.report import attack_table

    scenario = load_scenario(config, AttackScenario, overrides)
    assert isinstance(scenario, AttackScenario)
    make_dir(out_dir)
    if target_url is not None:
        from attacks.live import run_live_attack

        if not target_url.startswith(("http://", "https://")):
            raise UserError(f"--target: expected a URL like http://127.0.0.1:8000, got "
                            f"{target_url!r}")
        from serve.auth import Credentials

        live = run_live_attack(scenario, target_url.rstrip("/"), config.resolve().parent,
                               credentials=Credentials.resolve(api_keys, admin_token))
        report = live.report
        write_table(out_dir / "requests.parquet", live.requests)
    else:
        import sys

        from attacks.run import run_attack

        # the bar of inputs sent only on a terminal: nothing in logs or pipes
        from sim.sinks import TableFile

        table = TableFile(out_dir / "requests.parquet")
        try:
            result = run_attack(scenario, config.resolve().parent,
                                progress=not quiet and sys.stderr.isatty(), sink=table)
        except BaseException:
            table.abort()   # the simulation may be over and the training failing
            raise
        table.commit()
        report = result.report
        write_json(out_dir / "summary.json", report["benign"])
    write_yaml(out_dir / "config.resolved.yaml", scenario.model_dump(mode="json"))
    write_json(out_dir / "attack.json", report)
    if not quiet:
        click.echo(attack_table(report))
        click.echo(f"wrote {out_dir}/")


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for points/*.json and results.parquet.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="A local process pool, or Dask.")
@click.option("--scheduler", default=None, metavar="ADDR",
              help="Dask scheduler address (tcp://HOST:PORT); default: a LocalCluster. One "
              "that does not answer within 5 s is an error (exit status 2).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel points (default: the number of CPUs).")
@click.option("--resume", is_flag=True, help="Continue a sweep; finished points are kept.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(study: Path, out_dir: Path, backend: str, scheduler: str | None,
          workers: int | None, resume: bool, quiet: bool) -> None:
    """Run every point of the STUDY file (a base scenario, a grid, seeds)."""
    from experiments.runner import run_study
    from experiments.study import Study

    if scheduler and backend != "dask":
        raise UserError("--scheduler needs --backend dask")
    s = Study(study)
    path = run_study(s, out_dir, backend=backend, workers=workers,  # type: ignore[arg-type]
                     scheduler=scheduler, resume=resume, progress=not quiet)
    click.echo(f"{len(s.points)} points -> {path}")


@main.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for claims.md, figures/ and each study's results.")
@click.option("--quick", is_flag=True, help="Smaller studies (minutes on 2 cores).")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local",
              show_default=True)
@click.option("--scheduler", default=None, metavar="ADDR", help="Dask scheduler address.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel runs (default: the number of CPUs).")
@click.option("--quiet", is_flag=True, help="No progress output.")
def reproduce(out_dir: Path, quick: bool, backend: str, scheduler: str | None,
              workers: int | None, quiet: bool) -> None:
    """Reproduce PSML's claims C1-C4: run the studies, draw the figures, write claims.md.

    Finished runs are kept: running it again resumes."""
    from experiments.reproduce import reproduce as run

    path = run(out_dir, quick=quick, backend=backend, workers=workers,  # type: ignore[arg-type]
               scheduler=scheduler, progress=not quiet)
    click.echo(path.read_text())


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="[attack|defense] OUT_DIR...")
def report(args: tuple[str, ...]) -> None:
    """Write the report of the sweep in OUT_DIR (report.md and figures beside its
    results.parquet) and print it.

    The kind of sweep is read from its results: an attack-budget sweep (claims C1, C2), or a
    defense sweep (the goodput, attack-vs-noise, frontier or what-if report). Name it
    (`attack` or `defense`) to skip the detection. Several folders: goodput sweeps side by
    side. Missing or unrecognised results: exit status 2."""
    from experiments.report import KINDS, run_report

    kind = args[0] if len(args) > 1 and args[0] in KINDS else None
    dirs = [Path(a) for a in (args[1:] if kind else args)]
    click.echo(run_report(dirs, kind), nl=False)


def _mount_groups() -> None:
    from serve.cli import frontend, keygen, serve, simcheck
    from serve.load_cli import load
    from workloads.cli import traces
    from zoo_profiles.cli import zoo  # imports neither torch nor seaborn until a command runs

    main.add_command(zoo)
    main.add_command(traces)
    main.add_command(serve)
    main.add_command(keygen)
    main.add_command(simcheck)
    main.add_command(load)
    main.add_command(frontend)


_mount_groups()
