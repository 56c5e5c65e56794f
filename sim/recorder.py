"""The record stream: finished requests -> columnar chunks in id order -> tallies and a sink.

Issue 17: a run's memory must not grow with its requests. The engine hands each finished
batch to :meth:`Recorder.add` (one list extend per batch); every ``chunk_rows`` requests the
recorder turns them into columns (:func:`sim.records.request_columns`) and lets the request
objects go. Requests finish out of arrival order, so a chunk's rows wait, as compact columns,
until every lower id has finished, and the records come out in id order, as the in-memory
frame always had them; what waits is the requests that finished after the oldest one still
in flight arrived (about the throughput times that request's age: small unless a request is
stuck, which the live server bounds with ``max_waiting``). Each id-ordered chunk of records
then passes the run's ``transforms`` (columns computed per chunk, such as ``answer_ok``),
feeds the summary tallies (:class:`sim.tally.SummaryTally`) and goes to a sink
(:mod:`sim.sinks`): kept in memory, written to ``requests.parquet`` one row group at a time,
sampled, or dropped (the ``--records`` option), or kept in a bounded ring (the live server).

One design for every producer: ``zoosim simulate``, attack runs and the live server's
``/admin/records`` all record through this class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.records import Columns, concat_columns, records_of, request_columns, take_rows
from sim.request import Request

if TYPE_CHECKING:
    from sim.sinks import Sink
    from sim.tally import SummaryTally

CHUNK_ROWS = 65_536
"""Requests per chunk (and per Parquet row group): a few MB of request objects at most."""


class Recorder:
    """Collects finished requests and streams their records (module docstring)."""

    def __init__(self, tenants: list[str], models: list[str], accuracy: list[float], *,
                 admission: bool, shedding: bool, sink: Sink,
                 tallies: Sequence[SummaryTally] = (),
                 transforms: Sequence[Callable[[pd.DataFrame], None]] = (),
                 chunk_rows: int | None = None, max_waiting: int | None = None,
                 frontend: bool = False) -> None:
        self.tenants, self.models, self.accuracy = tenants, models, accuracy
        """The run's lists, read per chunk (so tenants registered late are named)."""
        self.admission, self.shedding = admission, shedding
        self.frontend = frontend
        """Records carry the front-end model's ``sent_s`` and ``done_s``."""
        self.sink = sink
        self.tallies = list(tallies)
        self.transforms = list(transforms)
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.buffer: list[Request] = []
        self.waiting: Columns | None = None
        """Finished rows whose lower ids are still in flight, sorted by id."""
        self.max_waiting = max_waiting
        """Rows that may wait for a lower id before it is given up on (None: no bound; the
        live server bounds it, since a request lost in flight would hold back every later
        record). A row whose id was given up on is passed on when it comes, out of order."""
        self.next_id = 0
        """The lowest id not recorded yet."""
        self.skipped: set[int] = set()
        """Ids above :attr:`next_id` that will never come (:meth:`skip`)."""
        self.rows = 0
        """Records passed on so far."""

    def add(self, batch: list[Request]) -> None:
        """Requests that finished now (the engine's completion callback)."""
        buf = self.buffer
        buf.extend(batch)
        if len(buf) >= self.chunk_rows:
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Pass on the finished requests whose lower ids have all finished (every finished
        request when ``final``: the run is over)."""
        parts = [] if self.waiting is None else [self.waiting]
        if self.buffer:
            parts.append(request_columns(self.buffer, self.frontend))
            self.buffer = []
        if not parts:
            return
        cols = concat_columns(parts)
        ids = cols["id"]
        if len(parts) > 1 or np.any(ids[1:] < ids[:-1]):
            order = np.argsort(ids, kind="stable")
            cols = take_rows(cols, order)
            ids = cols["id"]
        ready = self._ready(ids)
        cap = self.max_waiting
        if final or (cap is not None and len(ids) - ready > cap):
            ready = len(ids)
        self.waiting = take_rows(cols, slice(ready, None)) if ready < len(ids) else None
        if ready:
            self.next_id = max(self.next_id, int(ids[ready - 1]) + 1)
            self._emit(take_rows(cols, slice(0, ready)) if self.waiting is not None else cols)

    def _ready(self, ids: np.ndarray) -> int:
        """How many of the sorted ``ids`` may go: those below :attr:`next_id` (late: their
        gap was given up on), then the run without a gap from it, skipping skipped ids."""
        pos = int(np.searchsorted(ids, self.next_id))
        nid = self.next_id
        while pos < len(ids):
            rest = ids[pos:]
            gaps = np.flatnonzero(rest != nid + np.arange(len(rest)))
            if not len(gaps):
                return len(ids)
            pos += int(gaps[0])
            nid += int(gaps[0])
            if nid not in self.skipped:
                break
            self.skipped.discard(nid)
            nid += 1
        return pos

    def skip(self, rid: int) -> None:
        """Request ``rid`` will never finish (its submission failed): stop waiting for it."""
        if rid == self.next_id:
            self.next_id += 1
            while self.next_id in self.skipped:
                self.skipped.discard(self.next_id)
                self.next_id += 1
        elif rid > self.next_id:
            self.skipped.add(rid)

    def _emit(self, cols: Columns) -> None:
        df = records_of(cols, self.tenants, self.models, self.accuracy, self.admission,
                        self.shedding)
        df.index = pd.RangeIndex(self.rows, self.rows + len(df))
        self.rows += len(df)
        for transform in self.transforms:
            transform(df)
        for tally in self.tallies:
            tally.add(df)
        self.sink.write(df)

    def close(self) -> None:
        """The run is over: pass on everything and close the sink (a run without records
        passes one empty chunk, so a file still gets the columns)."""
        self.flush(final=True)
        if not self.rows:
            self._emit(request_columns([], self.frontend))
        self.sink.close()
