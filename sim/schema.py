"""Shared pieces of the config schema: strict models and file paths. (Plugin blocks are
validated by their registries: :mod:`sim.plugins`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, and no float
    may be infinite or NaN (YAML's ``.inf``/``.nan``: a rate of ``.inf`` would run with NaN
    figures instead of failing); a field's attribute docstring is its description
    (docs/configuration.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)


MAX_REQUESTS = 10_000_000_000
"""The most requests one run may make (``requests``, or ``duration_s`` times the tenants'
rates). Records stream to disk as requests finish (:mod:`sim.recorder`), so memory does not
bound a run; this bounds its time (about a day at 100k simulated requests per second) and its
``requests.parquet`` (about 60 bytes a record; ``--records sample:N`` or ``none`` keep it
small)."""

MAX_RATE_RPS = 1_000_000.0
"""The highest arrival rate (requests per second) a synthetic arrival process accepts."""


SHIPPED_TRACES = Path(__file__).resolve().parent.parent / "workloads" / "data"
"""The trace samples shipped with zoosim (workloads/data/README.md: sources, licence)."""


def _resolve_existing(value: str, info: ValidationInfo) -> str:
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_file() and Path(value).name == value and (SHIPPED_TRACES / value).is_file():
        path = SHIPPED_TRACES / value
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return str(path.resolve())


ExistingFile = Annotated[str, AfterValidator(_resolve_existing)]
"""A path to a file that must exist; relative paths are taken from the config file's folder,
and a bare file name not found there names a shipped trace (:data:`SHIPPED_TRACES`)."""
