"""User-facing errors: anything a user can fix (config, trace, profile, argument).

The CLI turns a :class:`UserError` into exit status 2 and one line on stderr, never a
traceback (docs/architecture.md, "Contracts").
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in user input; the message names the file, field or line and the fix."""


class ConfigError(UserError):
    """A scenario, experiment or profile file that does not validate."""


class TraceError(UserError):
    """A workload trace that cannot be read or is malformed (empty, unsorted, bad value)."""


def read_input_bytes(path: Path, what: str, error: type[UserError] = UserError) -> bytes:
    """The bytes of the user's file ``path`` (``what`` it is, for the message); a missing or
    unreadable file is one ``error`` naming it."""
    if not path.is_file():
        raise error(f"{what} {path}: file not found")
    try:
        return path.read_bytes()
    except OSError as e:
        raise error(f"{what} {path}: cannot read it ({e.strerror or e})") from None
