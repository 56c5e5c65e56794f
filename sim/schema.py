"""Shared pieces of the config schema: strict models, plugin registries, paths.

A plugin family (selection policies, arrival processes, SLO distributions, service-time models,
defenses) is a plain dict registry ``{"type-name": Class}``; each class carries a pydantic
``Params`` model whose ``type`` field is a ``Literal`` of its registry name. ``plugin_union``
turns a registry into a discriminated union, so the registry is the single source of truth:
adding an implementation is one module and one registry line (ARCHITECTURE.md, "Layout").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin(Protocol):
    """What a registry entry provides: its parameter model."""

    Params: ClassVar[type[Strict]]


def plugin_union(registry: dict[str, Any]) -> Any:
    """The discriminated union of the ``Params`` models of a registry's classes."""
    params = tuple(cls.Params for cls in registry.values())
    if len(params) == 1:
        return Annotated[params[0], Field(discriminator="type")]
    return Annotated[Union[params], Field(discriminator="type")]  # noqa: UP007


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
