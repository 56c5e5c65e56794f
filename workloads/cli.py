"""``zoosim traces ...``: list the shipped trace samples and fetch the full public datasets.

Mounted by the main CLI, which turns a :class:`sim.errors.UserError` into exit status 2 and
one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.group(name="traces")
def traces() -> None:
    """Workload traces: the samples shipped with zoosim and the public datasets they come from
    (Azure Public Dataset, CC-BY-4.0)."""


@traces.command(name="list")
def list_traces() -> None:
    """List the shipped samples (usable offline by file name in a scenario), the datasets
    `zoosim traces fetch` can download, and their attribution."""
    from workloads.catalog import listing

    click.echo(listing())


@traces.command()
@click.argument("name")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder to download into (default: $ZOOSIM_DATA, else "
              "~/.cache/zoosim/traces).")
@click.option("--url", default=None, metavar="URL",
              help="Download from this URL (a mirror) instead of the catalog's.")
def fetch(name: str, out_dir: Path | None, url: str | None) -> None:
    """Download the dataset NAME (see `zoosim traces list`) and print its path.

    Resumable: an interrupted download is kept as DIR/.NAME.part and continued (HTTP Range)
    by the next run. The file's sha256 is verified where the catalog knows it (a mismatch
    deletes the download); otherwise the digest is printed and marked unverified. A file
    already present is not downloaded again. The path goes to stdout, the rest to stderr.
    Offline or unreachable: exit status 2."""
    from workloads.catalog import dataset
    from workloads.fetch import default_dir
    from workloads.fetch import fetch as run

    ds = dataset(name)
    target = out_dir if out_dir is not None else default_dir()
    bar: Any = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=ds.size, unit="B", unit_scale=True, desc=name, leave=False)

    def progress(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        got = run(ds, target, url=url, progress=progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if not got.downloaded:
        state = "verified" if got.verified else "present (sha256 not known offline: unverified)"
        click.echo(f"{name}: already {state}, not downloaded", err=True)
    elif got.verified:
        click.echo(f"{name}: downloaded, sha256 verified", err=True)
    else:
        click.echo(f"{name}: downloaded, sha256 {got.sha256} (unverified: no digest of this file "
                   "is known offline)", err=True)
    click.echo(got.path)
