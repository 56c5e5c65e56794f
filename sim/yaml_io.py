"""Reading YAML config files: ``yaml.safe_load`` semantics, but a mapping that repeats a key
is an error (YAML forbids it; PyYAML keeps the last value silently, so a scenario could run
with a setting its author thought was overridden), and every problem is one line naming the
file and line (:class:`sim.errors.ConfigError`).

Every config the project reads (scenarios, studies, profiles, ``--set`` values) goes through
:func:`load_yaml` or :func:`read_yaml_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim.errors import ConfigError, read_input_bytes


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives the same key twice (``problem_mark``: the second one)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings refuse a repeated key. Keys merged in with ``<<``
    may still be overridden by the mapping's own keys (that is what a merge is for)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (first given on line "
                        f"{first.start_mark.line + 1})", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def yaml_problem(e: yaml.YAMLError) -> str:
    """A PyYAML error as one line: ``line L, column C: problem`` (its own text spans lines)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = e.problem or e.context or "not valid YAML"
        if e.context and e.problem and not isinstance(e, DuplicateKeyError):
            what += f" ({e.context})"
        return where + " ".join(what.split())
    return " ".join(str(e).split())


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` as ``yaml.safe_load`` does, refusing repeated keys; ``source``
    (a path, or ``--set KEY``) starts the error's one line."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: safe
    except DuplicateKeyError as e:
        raise ConfigError(f"{source}: {yaml_problem(e)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {yaml_problem(e)}") from None


def read_yaml_file(path: str | Path) -> Any:
    """:func:`load_yaml` of a file. A missing, unreadable or binary file (not UTF-8, or with
    NUL bytes: e.g. a Parquet file given by mistake) is a one-line :class:`ConfigError`."""
    p = Path(path)
    raw = read_input_bytes(p, "config", ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a YAML text file (byte {e.start} is not UTF-8 text; a "
                          "binary file?)") from None
    if "\0" in text:
        raise ConfigError(f"{p}: not a YAML text file (it contains NUL bytes; a binary "
                          "file?)")
    return load_yaml(text, str(p))
