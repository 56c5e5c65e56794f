"""Repository hygiene the test suite relies on."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_imports_from_a_conftest() -> None:
    """conftest.py holds fixtures, which pytest injects; helpers are imported from
    tests/helpers.py (importing a conftest as a module loads it twice under two names)."""
    needle = "conftest" + " import"   # (not spelled out: this file would match itself)
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if needle in p.read_text()]
    assert offenders == []
