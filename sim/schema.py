"""Shared pieces of the config schema: strict models and file paths. (Plugin blocks are
validated by their registries: :mod:`sim.plugins`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable; a field's
    attribute docstring is its description (docs/configuration.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
