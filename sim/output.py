"""Writing results: atomically (temp file + rename), so a killed run never leaves half a file;
into output folders checked before the work starts (:func:`make_dir`); and JSON that is
strict (:func:`json_text`: no ``NaN``, which most JSON parsers refuse)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sim.errors import UserError


def make_dir(path: Path) -> Path:
    """Create the output folder ``path`` (and its parents) and check that a file can be made
    in it. Commands call this before their work, so a folder that cannot be made or written
    (``-o /proc/x``, a read-only mount, a file in the way) is a one-line
    :class:`~sim.errors.UserError` naming it, not a traceback after the run."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".zoosim-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{path}: cannot write output there ({e.strerror or e}); choose "
                        "another folder") from None
    return path


def write_failed(path: Path, e: OSError) -> UserError:
    """The one-line error for a file that could not be written (a full disk, a read-only
    mount), naming it; every writer of results raises this."""
    return UserError(f"{path}: cannot write it ({e.strerror or e})")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place. A
    folder or file that cannot be written is a :class:`~sim.errors.UserError` naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise UserError(f"{path.parent}: cannot write output there ({e.strerror or e}); "
                        "choose another folder") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_failed(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite_json(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, +-inf; numpy's too) replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def json_text(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text: a non-finite float is written as ``null`` (``NaN`` is not JSON, and
    ``json.loads`` in other languages refuses it), and anything else that would need a
    non-standard token is an error. Every JSON file the project writes comes from here."""
    return json.dumps(finite_json(data), indent=indent, allow_nan=False)


def write_json(path: Path, data: Any) -> None:
    """``data`` as strict JSON (:func:`json_text`), atomically."""
    atomic_write(path, lambda p: p.write_text(json_text(data) + "\n"))


def write_yaml(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(yaml.safe_dump(data, sort_keys=False)))


def write_table(path: Path, df: Any) -> None:
    """A DataFrame as Parquet (``.parquet``) or CSV (``.csv``)."""
    if path.suffix == ".csv":
        atomic_write(path, lambda p: df.to_csv(p, index=False))
    else:
        atomic_write(path, lambda p: df.to_parquet(p, index=False))
