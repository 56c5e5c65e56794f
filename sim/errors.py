"""User-facing errors: anything a user can fix (config, trace, profile, argument).

The CLI turns a :class:`UserError` into exit status 2 and one line on stderr, never a
traceback (docs/architecture.md, "Contracts").
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in user input; the message names the file, field or line and the fix."""


class ConfigError(UserError):
    """A scenario, experiment or profile file that does not validate."""


class TraceError(UserError):
    """A workload trace that cannot be read or is malformed (empty, unsorted, bad value)."""
