"""Shared fixtures; the helpers they use are in :mod:`tests.helpers`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_profile


@pytest.fixture
def one_model(tmp_path: Path) -> Path:
    """A profile with one model of batch-1 latency 1 ms."""
    return write_profile(tmp_path / "one.yaml", [{"name": "m", "lat1": 1.0}])
