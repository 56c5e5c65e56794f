"""The garbage-collector settings of the processes that serve or send requests (issue 18)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sim.clock import GENERATIONAL_GC, YOUNG_GC_THRESHOLD, quiet_gc


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()  # what the test froze goes back to the collector


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("thresholds")
def test_quiet_gc_raises_the_young_threshold_and_keeps_the_older_ones() -> None:
    gc.set_threshold(700, 11, 12)
    before = gc.get_threshold()  # 3.14 reads back 0 for the third, which it ignores
    quiet_gc()
    young = YOUNG_GC_THRESHOLD if GENERATIONAL_GC else 700  # 3.14: left as it was
    assert gc.get_threshold() == (young, *before[1:])
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("thresholds")
def test_quiet_gc_never_lowers_a_threshold_nor_turns_collection_back_on() -> None:
    gc.set_threshold(10 * YOUNG_GC_THRESHOLD, 10, 10)
    quiet_gc()
    assert gc.get_threshold()[0] == 10 * YOUNG_GC_THRESHOLD
    gc.set_threshold(0, 10, 10)  # switched off by whoever runs the process
    quiet_gc()
    assert gc.get_threshold()[0] == 0


@pytest.mark.usefixtures("thresholds")
def test_garbage_made_afterwards_is_still_collected() -> None:
    quiet_gc()
    Cycle()  # unreachable at once, freed only by the collector
    assert gc.collect() > 0
