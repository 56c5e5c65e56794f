"""Turn pydantic validation errors into one clear line that names the field and the fix."""

from __future__ import annotations

import difflib
import math
from typing import Any

from pydantic import BaseModel, ValidationError


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """``tenants[0].arrivals.rate_rps`` from pydantic's loc, dropping union tags it inserts."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if not isinstance(node, dict) or part not in node:
            # a discriminated-union tag or a function-validator name, not a key of the input
            if isinstance(node, dict) and node.get("type") == part:
                continue
            if "[" in part or "(" in part:
                continue
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _known_fields(model: type[BaseModel] | None) -> set[str]:
    seen: set[str] = set()
    if model is None:
        return seen

    def walk(m: Any) -> None:
        if not (isinstance(m, type) and issubclass(m, BaseModel)) or m.__name__ in seen:
            return
        seen.add(m.__name__)
        for name, f in m.model_fields.items():
            names.add(name)
            for arg in _flatten(f.annotation):
                walk(arg)

    names: set[str] = set()
    walk(model)
    return names


def _flatten(tp: Any) -> list[Any]:
    args = getattr(tp, "__args__", None) or getattr(tp, "__metadata__", None)
    origin = getattr(tp, "__origin__", None)
    out = [tp]
    for a in args or ():
        out.extend(_flatten(a))
    if origin is not None:
        out.extend(_flatten(origin))
    return out


def locate_validation_error(err: ValidationError, data: Any,
                            model: type[BaseModel] | None = None) -> tuple[str, str, int]:
    """The first problem as (where, what, how many more): ``where`` a dotted path into
    ``data`` ("" at the top level), ``what`` the message without it."""
    errors = err.errors(include_url=False)
    # a misspelled key also makes the real one "missing": name the misspelling first
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    where = _path(loc, data)
    where = "" if where == "(top level)" else where
    kind = first["type"]
    ctx = first.get("ctx", {})
    more = len(errors) - 1
    if kind == "plugin_params":  # a plugin block's own error (sim.plugins): its path inside
        inner = str(ctx.get("path", ""))
        where = ".".join(p for p in (where, inner) if p).replace(".[", "[")
        msg = str(ctx.get("message", first["msg"]))
        more += int(ctx.get("more", 0))
    elif kind == "extra_forbidden":
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, sorted(_known_fields(model)), 1)
        where = where.rsplit(".", 1)[0] if "." in where else ""
        msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    elif kind == "union_tag_invalid":
        hint = difflib.get_close_matches(str(ctx.get("tag")), ctx.get("known", []), 1)
        msg = (f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
               + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    elif kind == "union_tag_not_found":
        msg = "missing 'type' (say which kind this block is)"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "int_parsing" and _float_text(first.get("input")):
        msg = (f"expected a whole number, got {first['input']!r}, which YAML reads as text "
               "(its exponent form): write the number out, e.g. 1000000 for 1e6")
    else:
        text = first["msg"].removeprefix("Value error, ")
        got = first.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        msg = f"{text}{shown}"
    return where, msg, more


def _float_text(value: Any) -> bool:
    """Whether ``value`` is text that reads as a number (``"1e6"``: YAML 1.1 keeps it a
    string, so an integer field refuses it with a puzzling message)."""
    if not isinstance(value, str) or "e" not in value.lower():
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def describe_validation_error(err: ValidationError, data: Any,
                              model: type[BaseModel] | None = None) -> str:
    """One line: where, what is wrong, and (for misspelled keys) what was probably meant."""
    where, msg, more = locate_validation_error(err, data, model)
    return f"{where or '(top level)'}: {msg}" + (f" [and {more} more problem(s)]" if more
                                                 else "")
