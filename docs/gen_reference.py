"""Reference pages generated from the code at build time (run by ``docs/hooks.py``).

- :func:`configuration_reference`: every configuration model (the scenario and its nested
  models, every registered plugin's ``Params``, the attacker, studies, the live server) and the
  models of the output files (``summary.json``, ``attack.json``), as tables of field, type,
  default and description (the field's attribute docstring or ``description``);
- :func:`cli_reference`: every ``zoosim`` command and group, recursively: usage, help,
  arguments and options.

Nothing here is committed as text: the pages hold a marker that the hook replaces, so the
reference cannot drift from the code. ``python docs/gen_reference.py config|cli`` prints one.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sim.plugins import PluginParams, Registry  # noqa: E402

# -- configuration ---------------------------------------------------------------------------

def _anchor(model: type[BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}".replace(".", "-").lower()


def _registry_of(metadata: Iterable[Any]) -> Registry[Any] | None:
    """The registry behind a plugin-block field (its validator closes over it)."""
    for item in metadata:
        if isinstance(item, BeforeValidator):
            for cell in getattr(item.func, "__closure__", None) or ():
                value = cell.cell_contents
                if isinstance(value, Registry):
                    return value
    return None


def _constraints(metadata: Iterable[Any]) -> list[str]:
    out = []
    for item in metadata:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, name, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                out.append(f"{sign} {value}")
        for name, word in (("min_length", "length >="), ("max_length", "length <=")):
            value = getattr(item, name, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                out.append(f"{word} {value}")
    return out


def _type(tp: Any, metadata: Iterable[Any] = (), seen: list[type[BaseModel]] | None = None
          ) -> str:
    """A short, readable type; nested models are linked and collected in ``seen``."""
    reg = _registry_of(metadata)
    if reg is not None:
        return f"a [`{reg.family}` block](#{reg.family}-plugins)"
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _type(base, [*metadata, *meta], seen)
    cons = _constraints(metadata)
    suffix = f" ({', '.join(cons)})" if cons else ""
    if origin is Literal:
        return " \\| ".join(f"`{a}`" if isinstance(a, str) else f"`{a!r}`"
                            for a in get_args(tp)) + suffix
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type(a, (), seen) for a in get_args(tp)) + suffix
    if origin in (list, tuple, dict, set):
        args = ", ".join("..." if a is Ellipsis else _type(a, (), seen) for a in get_args(tp))
        return f"{origin.__name__}[{args}]{suffix}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if seen is not None and tp not in seen:
            seen.append(tp)
        return f"[{tp.__name__}](#{_anchor(tp)}){suffix}"
    if tp is Any:
        return "any" + suffix
    return (tp.__name__ if isinstance(tp, type) else str(tp)) + suffix


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    elif info.default is PydanticUndefined:
        return "**required**"
    else:
        value = info.default
    if isinstance(value, PluginParams):
        rest = value.model_dump(exclude={"type"})
        return f"`{value.type}`" if not rest else f"`{value.model_dump()}`"
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _markdown(text: str) -> str:
    """Docstring markup (reStructuredText roles, double backquotes) as markdown."""
    text = re.sub(r":(?:mod|class|func|meth|data|attr|obj):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str | None) -> str:
    if not text:
        return ""
    return _markdown(" ".join(inspect.cleandoc(text).split())).replace("|", "\\|")


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return _markdown(doc.split("\n\n")[0].replace("\n", " "))


def _field_table(model: type[BaseModel], fields: Iterable[str],
                 seen: list[type[BaseModel]], defaults: bool = True) -> list[str]:
    head = "| field | type | default | description |" if defaults else \
        "| key | type | description |"
    rows = [head, "|---|---|---|---|" if defaults else "|---|---|---|"]
    for name in fields:
        info = model.model_fields[name]
        typ = _type(info.annotation, info.metadata, seen)
        desc = _cell(info.description)
        if defaults:
            rows.append(f"| `{name}` | {typ} | {_default(info)} | {desc} |")
        else:
            rows.append(f"| `{name}` | {typ} | {desc} |")
    return rows


def _own_fields(model: type[BaseModel]) -> list[str]:
    """The fields a subclass adds or redeclares (all of them for a root model)."""
    parents = [b for b in model.__mro__[1:] if isinstance(b, type) and issubclass(b, BaseModel)
               and b.model_fields]
    if not parents:
        return list(model.model_fields)
    own = inspect.get_annotations(model)
    return [f for f in model.model_fields if f in own or f not in parents[0].model_fields]


def _models(roots: list[type[BaseModel]], level: int, done: list[type[BaseModel]],
            defaults: bool = True) -> list[str]:
    """Sections for ``roots`` and every model they reach, each once on the page (``done``: the
    models already documented), in order of discovery."""
    out: list[str] = []
    todo = list(roots)
    while todo:
        model = todo.pop(0)
        if model in done:
            continue
        done.append(model)
        seen: list[type[BaseModel]] = []
        fields = _own_fields(model)
        parent = next((b for b in model.__mro__[1:] if isinstance(b, type)
                       and issubclass(b, BaseModel) and b.model_fields), None)
        out.append(f"{'#' * level} {model.__name__} {{#{_anchor(model)}}}")
        out.append("")
        out.append(f"`{model.__module__}.{model.__qualname__}`: {_doc(model)}")
        if parent is not None and fields != list(model.model_fields):
            out.append(f"Every field of [{parent.__name__}](#{_anchor(parent)}), and:")
        out.append("")
        out.extend(_field_table(model, fields, seen, defaults))
        out.append("")
        todo.extend(m for m in seen if m not in done and not issubclass(m, PluginParams))
    return out


def _registries() -> list[tuple[str, str, Registry[Any]]]:
    import attacks.strategies
    import defense
    import sim.policies
    import sim.service_time
    import workloads.arrivals
    import workloads.slo

    return [
        ("sim.policies.POLICIES", "`policy`", sim.policies.POLICIES),
        ("defense.DEFENSES", "`defense` (one block or a list: a stack)", defense.DEFENSES),
        ("sim.service_time.SERVICE_TIMES", "`service_time`", sim.service_time.SERVICE_TIMES),
        ("workloads.arrivals.ARRIVALS", "`tenants[i].arrivals`", workloads.arrivals.ARRIVALS),
        ("workloads.slo.DISTRIBUTIONS", "`tenants[i].slo.accuracy`, `.latency_ms`",
         workloads.slo.DISTRIBUTIONS),
        ("attacks.strategies.STRATEGIES", "`attacker.strategy`",
         attacks.strategies.STRATEGIES),
    ]


def configuration_reference() -> str:
    """The configuration and output-file reference (markdown)."""
    from attacks.config import AttackerConfig, AttackScenario
    from attacks.report import AttackReport
    from experiments.study import StudyConfig
    from serve.config import ServeScenario
    from sim.config import Scenario
    from sim.frontend_profile import FrontendProfile, Process
    from sim.summary import Summary

    done: list[type[BaseModel]] = []
    out = ["## Scenario", ""]
    out += _models([Scenario], 3, done)
    out += ["## Plugin blocks", "",
            "Every block is a mapping whose `type` names a registered class (a bare name is "
            "that type with its defaults); its other keys are the class's `Params`. The "
            "tables list every class registered when the docs were built.", ""]
    for path, where, reg in _registries():
        out += [f"### {reg.family} plugins {{#{reg.family}-plugins}}", "",
                f"Registry `{path}`; scenario key {where}.", ""]
        for name, cls in sorted(reg.items()):
            params = cls.Params
            out += [f"#### `{name}` {{#{reg.family}-{name.replace('_', '-')}}}", "",
                    f"`{cls.__module__}.{cls.__qualname__}`: {_doc(cls)}", ""]
            fields = [f for f in params.model_fields if f != "type"]
            seen: list[type[BaseModel]] = []
            if fields:
                out += _field_table(params, fields, seen)
            else:
                out.append("No parameters besides `type`.")
            out.append("")
            for nested in seen:
                if not issubclass(nested, PluginParams) and nested not in done:
                    out += _models([nested], 5, done)
    out += ["## Attack scenario", ""]
    out += _models([AttackScenario, AttackerConfig], 3, done)
    out += ["## Live server", ""]
    out += _models([ServeScenario], 3, done)
    out += ["## Study", ""]
    out += _models([StudyConfig], 3, done)
    out += ["## Front-end profile", "",
            "The file `zoosim frontend profile` writes and a scenario's `frontend.profile` "
            "names ([the front-end model](serving.md#the-front-end-model)).", ""]
    out += _models([FrontendProfile, Process], 3, done)
    out += ["## Output files", "",
            "Keys in file order. A key marked optional in its type may be absent: see the "
            "model's documentation.", ""]
    out += _models([Summary, AttackReport], 3, done, defaults=False)
    return "\n".join(out)


# -- command line ----------------------------------------------------------------------------

def _command(cmd: click.Command, ctx: click.Context, level: int) -> list[str]:
    path = ctx.command_path
    out = [f"{'#' * level} `{path}` {{#{path.replace(' ', '-')}}}", ""]
    help_text = inspect.cleandoc((cmd.help or "").split("\f")[0]).replace("\b\n", "")
    out += [help_text, "", "```", cmd.get_usage(ctx).strip(), "```", ""]
    args = [p for p in cmd.get_params(ctx) if isinstance(p, click.Argument)]
    opts = [p for p in cmd.get_params(ctx) if isinstance(p, click.Option)]
    if args:
        out += ["| argument | type | required |", "|---|---|---|"]
        for a in args:
            out.append(f"| `{a.make_metavar(ctx)}` | {a.type.name} | "
                       f"{'yes' if a.required else 'no'} |")
        out.append("")
    if opts:
        out += ["| option | help |", "|---|---|"]
        for o in opts:
            record = o.get_help_record(ctx)
            if record is None:
                continue
            names, text = record
            out.append(f"| `{names}` | {_cell(text)} |")
        out.append("")
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            out += _command(sub, click.Context(sub, info_name=name, parent=ctx), level + 1)
    return out


def cli_reference() -> str:
    """Every command of ``zoosim``, recursively (markdown)."""
    from sim.cli import main

    ctx = click.Context(main, info_name="zoosim", terminal_width=100, max_content_width=100)
    return "\n".join(_command(main, ctx, 2))


MARKERS: dict[str, Callable[[], str]] = {
    "<!-- generated: configuration -->": configuration_reference,
    "<!-- generated: cli -->": cli_reference,
}
"""Each marker a page may hold, and the function whose text replaces it."""


def expand(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text."""
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


if __name__ == "__main__":
    which = {"config": configuration_reference, "cli": cli_reference}
    print(which[sys.argv[1] if len(sys.argv) > 1 else "config"]())
