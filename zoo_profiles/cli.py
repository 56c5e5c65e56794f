"""``zoosim zoo ...``: build, re-profile, list, show and plot model-zoo profiles.

Mounted by the main CLI (``main.add_command(zoo)``). This module imports neither torch nor
seaborn/matplotlib at import time (each command imports what it needs), so ``zoosim --help``
stays fast. User mistakes raise :class:`sim.errors.UserError`, which the main CLI turns into exit
status 2 and one line on stderr (docs/architecture.md, "Contracts").
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sim.errors import UserError
from sim.profiles import ZooProfile, available_profiles, load_profile


def _parse_archs(archs: str | None) -> list[str] | None:
    return [a.strip() for a in archs.split(",") if a.strip()] if archs else None


def _parse_batches(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise UserError(f"--batch-sizes: expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1 or 1 not in sizes:
        raise UserError(f"--batch-sizes: need positive sizes including 1, got {text!r}")
    return tuple(sorted(set(sizes)))


@click.group(name="zoo")
def zoo() -> None:
    """Model zoos: train and profile real models, list and inspect profiles."""


@zoo.command()
@click.option("--dataset", default="mnist5k", show_default=True,
              help="mnist5k or mnist1d (offline), or mnist / cifar10 from --data-dir.")
@click.option("--name", default=None, help="Profile name [default: DATASET-DEVICE].")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (for profiling).")
@click.option("--epochs", default=None, type=int,
              help="Training epochs per model [default: the dataset's recipe, 12 for mnist5k].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: the shipped zoo_profiles folder].")
@click.option("--subset", default=None, type=int, help="Cut every split to N images (quick).")
@click.option("--archs", default=None, help="Comma-separated model families [default: all].")
@click.option("--data-dir", default=None, type=click.Path(path_type=Path),
              help="Folder of the mnist idx / cifar10 binary files.")
@click.option("--batch-sizes", default="1,2,4,8,16,32,64", show_default=True,
              help="Batch sizes to profile (must include 1).")
@click.option("--budget-s", default=0.5, show_default=True, type=float,
              help="Timing budget per batch size, seconds.")
@click.option("--threads", default=1, show_default=True, type=int,
              help="Torch intra-op threads while profiling (0: torch's default).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--force", is_flag=True,
              help="Overwrite an existing profile of that name (a shipped one included).")
def build(dataset: str, name: str | None, device: str, epochs: int | None, seed: int,
          out_dir: Path | None, subset: int | None, archs: str | None, data_dir: Path | None,
          batch_sizes: str, budget_s: float, threads: int, progress: bool,
          force: bool) -> None:
    """Train, evaluate and profile every model family; write NAME.yaml and the weights."""
    from sim.profiles import PROFILE_DIR
    from zoo_profiles.build import build_zoo

    families, batches = _parse_archs(archs), _parse_batches(batch_sizes)
    name = name or f"{dataset}-{device}"
    target = (out_dir or PROFILE_DIR) / f"{name}.yaml"
    if target.exists() and not force:
        raise UserError(f"--name: {target} exists (rebuilt on another machine its figures "
                        "differ); choose another --name or --out, or pass --force to "
                        "overwrite it")
    path = build_zoo(dataset, name, device, out_dir, seed, epochs, subset, progress,
                     families, batches, data_dir=data_dir, budget_s=budget_s,
                     threads=threads or None)
    click.echo(f"wrote {path}")
    _print_table(load_profile(path))


@zoo.command()
@click.argument("name")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--out-name", default=None,
              help="Name of the new profile [default: NAME with its device suffix replaced].")
@click.option("--threads", default=1, show_default=True, type=int,
              help="Torch intra-op threads while profiling (0: torch's default).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def profile(name: str, device: str, out_name: str | None, threads: int, progress: bool) -> None:
    """Re-measure a zoo's latency on DEVICE from its weights (accuracy kept)."""
    from zoo_profiles.build import profile_zoo

    path = profile_zoo(name, device, out_name, progress=progress, threads=threads or None)
    click.echo(f"wrote {path}")
    _print_table(load_profile(path))


@zoo.command()
@click.argument("name")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cuda", show_default=True,
              help="The device to check against the CPU (cpu: the CPU against itself).")
@click.option("--tf32", "tf32", type=click.Choice(["default", "on", "off"]), default="default",
              show_default=True,
              help="TF32 in cuDNN convolutions and CUDA matrix products: torch's settings "
                   "(by default convolutions on, matrix products off), both on, or both off.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Local folder of a full dataset (mnist, cifar10).")
def check(name: str, device: str, tf32: str, data_dir: Path | None) -> None:
    """Do a zoo's models predict on DEVICE what they predict on the CPU (its test split)?

    Exit status 1 when any prediction differs."""
    from zoo_profiles.device_check import compare_devices

    allow = {"default": None, "on": True, "off": False}[tf32]
    rows = compare_devices(name, device, allow_tf32=allow, data_dir=data_dir)
    click.echo(f"{'model':<16} {'acc cpu %':>9} {'acc ' + device + ' %':>10} {'agree':>7} "
               f"{'max |logit diff|':>16}")
    for r in rows:
        click.echo(f"{r.model:<16} {r.accuracy_cpu:>9.2f} {r.accuracy_device:>10.2f} "
                   f"{r.agreement:>7.4f} {r.max_logit_diff:>16.2e}")
    differ = [r.model for r in rows if not r.agrees]
    click.echo(f"{len(rows) - len(differ)} of {len(rows)} models agree on every test input"
               + (f"; differ: {', '.join(differ)}" if differ else ""))
    if differ:
        sys.exit(1)


@zoo.command(name="list")
def list_() -> None:
    """The shipped profiles: model count, source, accuracy range."""
    names = available_profiles()
    if not names:
        click.echo("no profiles shipped")
        return
    click.echo(f"{'profile':<22} {'models':>6}  {'source':<10} {'accuracy %':<13} device")
    for n in names:
        try:
            p = load_profile(n)
        except UserError as e:
            click.echo(f"{n:<22} invalid: {e}")
            continue
        accs = [m.accuracy for m in p.models]
        device = p.metadata.device or "?"
        click.echo(f"{n:<22} {len(p.models):>6}  {p.metadata.source:<10} "
                   f"{min(accs):5.1f}-{max(accs):5.1f}   {device}")


def _print_table(p: ZooProfile) -> None:
    front = {m.name for m in p.pareto_front}
    big = max(max(m.latency_ms) for m in p.models)
    big_head = f" {f'b{big} p50':>9}" if big > 1 else ""
    click.echo(f"{p.name} ({p.metadata.source}); latency in ms; * = on the accuracy/latency "
               "Pareto front")
    click.echo(f"  {'model':<22} {'params':>9} {'acc %':>6} {'b1 p50':>8} {'b1 p99':>8}"
               f"{big_head} {'mem MB':>7} {'load ms':>8}")
    for m in sorted(p.models, key=lambda m: m.latency_p50(1)):
        star = "*" if m.name in front else " "
        top = ""
        if big > 1:
            top = f" {m.latency_ms[big].p50:9.4g}" if big in m.latency_ms else f" {'-':>9}"
        click.echo(f"{star} {m.name:<22} {m.params:>9} {m.accuracy:>6.2f} "
                   f"{m.latency_ms[1].p50:>8.4g} {m.latency_ms[1].p99:>8.4g}{top} "
                   f"{m.memory_mb:>7.3g} {m.load_ms:>8.3g}")


@zoo.command()
@click.argument("name")
def show(name: str) -> None:
    """A table of NAME's models (latency in ms), marking the Pareto front."""
    _print_table(load_profile(name))


@zoo.command()
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
def plot(name: str, output: Path) -> None:
    """Accuracy vs batch-1 latency (log axis) with the Pareto front."""
    from zoo_profiles.plots import plot_front

    plot_front(name, output)
    click.echo(f"wrote {output}")


@zoo.command()
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path),
              help="A cifar*_zoo_published.csv, or a folder holding them.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: the shipped zoo_profiles folder].")
def published(csv_path: Path, out_dir: Path | None) -> None:
    """Regenerate the published (not measured) CIFAR-10/100 profiles from their CSVs."""
    from zoo_profiles.published import build_all_published

    for path in build_all_published(csv_path, out_dir):
        click.echo(f"wrote {path}")


def main() -> None:
    """Run the group on its own (``python -m zoo_profiles.cli``), user errors exit 2."""
    try:
        zoo(standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(1)


if __name__ == "__main__":
    main()
