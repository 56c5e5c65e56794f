"""Statistics over seeds: means with 95 % Student-t intervals, and claim checks (docs/paper.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sim.errors import UserError


def read_results(out_dir: Path, needs: Sequence[str], what: str) -> pd.DataFrame:
    """A sweep's ``results.parquet``, with one clear :class:`UserError` when it is missing or
    lacks the columns a report ``needs`` (``what``: the kind of sweep that has them)."""
    path = Path(out_dir) / "results.parquet"
    if not path.is_file():
        raise UserError(f"{out_dir}: no results.parquet (run `zoosim sweep STUDY.yaml -o "
                        f"{out_dir}` first)")
    df = pd.read_parquet(path)
    lacking = [c for c in needs if c not in df.columns]
    if lacking:
        raise UserError(f"{out_dir}: these results lack {lacking}; this report reads {what}")
    return df


def report_main(usage: str, run: Callable[[list[str]], str], argv: list[str]) -> int:
    """The ``python -m experiments.<report>`` entry: print the report, or one line and exit
    status 2 for a usage mistake or unusable results (no traceback)."""
    import sys

    try:
        if not argv:
            raise UserError(f"usage: {usage}")
        print(run(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its ``level`` t-interval (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), 0.0
    half = stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def table(df: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per group: ``metric`` (mean), ``metric±`` (95 % half-width), and ``n``."""
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        for m in metrics:
            row[m], row[f"{m}±"] = mean_ci(g[m].to_numpy())
        row["n"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_gap(df: pd.DataFrame, by: list[str], strategy_col: str, a: str, b: str,
               metric: str) -> pd.DataFrame:
    """Per group, the mean and 95 % interval of ``metric(a) - metric(b)`` paired by seed."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        pa = g[g[strategy_col] == a].set_index("param.seed")[metric]
        pb = g[g[strategy_col] == b].set_index("param.seed")[metric]
        diff = (pa - pb).dropna()
        mean, half = mean_ci(diff.to_numpy())
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({"gap": mean, "gap±": half, "n": len(diff)})
        rows.append(row)
    return pd.DataFrame(rows)


HEADERS = {"param.tenants.0.arrivals.rate_rps": "load (req/s)",
           "param.attacker.budget": "budget (inputs)", "param.seed": "seed",
           "load_rps": "load (req/s)", "budget": "budget (inputs)", "sd": "noise sd"}
"""Readable headers for the parameter columns of a study's results."""


def markdown(df: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as a GitHub markdown table; ``x`` and ``x±`` columns shown as ``x ± h``,
    parameter columns under readable headers, and whole-number parameters (a load, a budget)
    without decimals."""
    cols = [c for c in df.columns if not c.endswith("±")]
    whole = {c for c in cols if f"{c}±" not in df.columns and _whole(df[c])}
    head = [HEADERS.get(str(c), str(c).removeprefix("param.")) for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in whole:
                cell = f"{int(v)}"
            elif isinstance(v, float):
                cell = f"{v:.{digits}f}"
                if f"{c}±" in df.columns and not math.isnan(r[f"{c}±"]):
                    cell += f" ± {r[f'{c}±']:.{digits}f}"
            else:
                cell = str(v)
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _whole(col: pd.Series) -> bool:
    """A numeric column of whole numbers only (no NaN)."""
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return False
    v = col.to_numpy(dtype=float)
    return bool(len(v)) and bool(np.isfinite(v).all() and (v == np.round(v)).all())
