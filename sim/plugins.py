"""The one plugin contract: typed registries, a build context, and lazily built config unions.

Every extension point (selection policies, defenses, service-time models, arrival processes,
SLO distributions, attack strategies) is a :class:`Registry` of classes. A class joins with
``@REGISTRY.register("name")``; it carries a nested pydantic ``Params`` model (a
:class:`PluginParams` whose ``type`` is ``Literal["name"]``) and is built as
``cls(params, ctx)``, where ``ctx`` (:class:`Context`) holds the zoo, the clock and the
plugin's named random stream. Nothing else about a plugin is special-cased.

A scenario's plugin block (``policy: {type: ...}``) is validated against the registry as it is
*when validated*, not when the schema was imported: packages outside zoosim register through
the ``zoosim.plugins`` entry-point group (each entry names a module whose import registers its
classes), loaded on the first lookup. An unknown ``type`` is an error naming the field and the
known types.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BeforeValidator, SerializeAsAny, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from sim.errors import ConfigError
from sim.schema import Strict

if TYPE_CHECKING:
    import numpy as np
    import simpy

    from sim.rng import SeedTree
    from sim.zoo import Zoo

ENTRY_POINT_GROUP = "zoosim.plugins"


class PluginParams(Strict):
    """Base of every plugin's ``Params``: the ``type`` tag names the registered class."""

    type: str


@dataclass(frozen=True)
class Context:
    """What a plugin is built with: the zoo, the clock, and its random streams.

    ``stream`` is the plugin's own named stream (e.g. ``defense``, ``arrivals/<tenant>``),
    derived from the scenario's one seed; :meth:`rng` gives it, :meth:`child` a stream under it.
    Fields a plugin family does not need are None (an arrival process has no zoo).
    """

    zoo: Zoo | None = None
    clock: simpy.Environment | None = None
    seeds: SeedTree | None = None
    stream: tuple[str, ...] = ()
    generator: np.random.Generator | None = None
    """A generator given directly (a member of a stack draws from a child of the stack's)."""

    def rng(self) -> np.random.Generator:
        """The plugin's own random stream (the same object on every call)."""
        if self.generator is None:
            raise RuntimeError(f"no random stream in this context ({'/'.join(self.stream)})")
        return self.generator

    def child(self, *names: str) -> np.random.Generator:
        """An independent stream named under this plugin's (``stream + names``)."""
        if self.seeds is None:
            raise RuntimeError("no seed in this context")
        return self.seeds.generator(*self.stream, *names)

    def with_stream(self, *names: str) -> Context:
        """The context of a plugin drawing from the named stream ``names``."""
        gen = self.seeds.generator(*names) if self.seeds is not None else None
        return replace(self, stream=names, generator=gen)

    def with_generator(self, generator: np.random.Generator) -> Context:
        """The context of a plugin drawing from ``generator``."""
        return replace(self, generator=generator)

    @property
    def need_zoo(self) -> Zoo:
        """The zoo, for plugins that need one."""
        if self.zoo is None:
            raise RuntimeError("this plugin needs a zoo in its context")
        return self.zoo


T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one plugin family, all built as ``cls(params, ctx)``."""

    def __init__(self, family: str, base: type) -> None:
        self.family = family
        """What the classes are, for messages (``policy``, ``defense``, ...)."""
        self.base = base
        """The class every entry subclasses (often abstract, so not ``type[T]``: declare the
        registry's type, ``X: Registry[Base] = Registry("x", Base)``)."""
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register ``cls`` as ``name``; its ``Params.type`` must say so."""

        def add(cls: type[T]) -> type[T]:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"{cls!r} is not a {self.base.__name__}")
            params = getattr(cls, "Params", None)
            if not (isinstance(params, type) and issubclass(params, PluginParams)):
                raise TypeError(f"{cls.__name__}.Params must subclass sim.plugins.PluginParams")
            tag = params.model_fields["type"].default
            if tag != name:
                raise TypeError(f"{cls.__name__}.Params.type defaults to {tag!r}, registered "
                                f"as {name!r}: declare type: Literal[{name!r}] = {name!r}")
            known = self._classes.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"{self.family} {name!r} is already registered "
                                 f"({known.__module__}.{known.__qualname__})")
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        """Registered names (entry-point plugins included)."""
        load_entry_points()
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, type[T]]]:
        load_entry_points()
        return list(self._classes.items())

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (a ConfigError naming the known ones if none)."""
        load_entry_points()
        cls = self._classes.get(name)
        if cls is None:
            raise ConfigError(f"unknown {self.family} type {name!r}; expected one of "
                              f"{sorted(self._classes)}")
        return cls

    __getitem__ = get

    def params_class(self, name: str) -> type[PluginParams]:
        params: type[PluginParams] = getattr(self.get(name), "Params")  # noqa: B009
        return params

    def build(self, params: PluginParams, ctx: Context) -> T:
        """An instance for a validated block: ``cls(params, ctx)``."""
        factory: Callable[[PluginParams, Context], T] = self.get(params.type)
        return factory(params, ctx)

    def parse(self, value: Any, context: Any = None) -> PluginParams:
        """Validate one block against the class its ``type`` names (errors name the field)."""
        if isinstance(value, PluginParams):
            if value.type in self._classes and isinstance(value, self.params_class(value.type)):
                return value
            value = value.model_dump()
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            raise PydanticCustomError("plugin_block", "expected a mapping with a `type` (one of "
                                      "{expected})", {"expected": self.names()})
        if "type" not in value:
            raise PydanticCustomError("union_tag_not_found", "missing `type`")
        load_entry_points()
        tag = value["type"]
        cls = self._classes.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise PydanticCustomError(
                "union_tag_invalid", "unknown type {tag!r}; expected one of {expected_tags}",
                {"tag": tag, "expected_tags": ", ".join(repr(n) for n in self._classes),
                 "known": list(self._classes)})
        params: type[PluginParams] = getattr(cls, "Params")  # noqa: B009
        try:
            return params.model_validate(value, context=context)
        except ValidationError as e:
            from sim.config_errors import locate_validation_error

            path, message, more = locate_validation_error(e, value, params)
            raise PydanticCustomError("plugin_params", "{message}",
                                      {"path": path, "message": message, "more": more}) from None

    def field(self) -> Any:
        """The annotation of a config field holding one block of this family."""

        def validate(value: Any, info: ValidationInfo) -> PluginParams:
            return self.parse(value, info.context)

        return Annotated[SerializeAsAny[PluginParams], BeforeValidator(validate)]


_loaded = False


def load_entry_points() -> None:
    """Import every module named in the ``zoosim.plugins`` entry-point group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin is the user's input: name it
            raise ConfigError(f"plugin {ep.name!r} ({ep.value}, entry point group "
                              f"{ENTRY_POINT_GROUP}) failed to load: {e}") from None

