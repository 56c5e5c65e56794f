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


REPO = TESTS.parent
PACKAGES = ("sim", "workloads", "defense", "zoo_profiles", "attacks", "experiments", "serve")


def test_readme_is_a_front_page() -> None:
    """Reference and results live in docs/; the README stays short."""
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_code_cites_only_what_the_repository_holds() -> None:
    """Docstrings cite docs pages, not design files that exist only beside the repository;
    no package calls itself unbuilt."""
    gone = ("ARCHITECTURE" + ".md", "PAPER" + ".md", "not built" + " yet")
    offenders = [f"{p.relative_to(REPO)}: {g}" for pkg in PACKAGES
                 for p in (REPO / pkg).rglob("*.py") for g in gone if g in p.read_text()]
    assert offenders == []
