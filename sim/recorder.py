"""The record stream: finished requests -> columnar chunks in id order -> tallies and a sink.

Issue 17: a run's memory must not grow with its requests. The engine hands each finished
batch to :meth:`Recorder.add` (one list extend per batch); every ``chunk_rows`` requests the
recorder turns them into columns (:func:`sim.records.request_columns`) and lets the request
objects go. Requests finish out of arrival order, so a chunk's rows wait, as compact columns,
until every lower id has finished, and the records come out in id order, as the in-memory
frame always had them; what waits is the requests that finished after the oldest one still
in flight arrived (about the throughput times that request's age: small unless a request is
stuck, which the live server bounds with ``max_waiting``). Each id-ordered chunk of records
then passes the run's ``transforms`` (columns computed per chunk, such as ``answer_ok``), feeds the
summary tallies (:class:`sim.tally.SummaryTally`) and goes to a sink: kept in memory, written
to ``requests.parquet`` one row group at a time, sampled, or dropped
(:func:`sink_for`, the ``--records`` option), or kept in a bounded ring (the live server).

One design for every producer: ``zoosim simulate``, attack runs and the live server's
``/admin/records`` all record through this class.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from sim.errors import UserError
from sim.records import Columns, concat_columns, records_of, request_columns, take_rows
from sim.request import Request

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from sim.tally import SummaryTally

CHUNK_ROWS = 65_536
"""Requests per chunk (and per Parquet row group): a few MB of request objects at most."""


class Sink(Protocol):
    """Where id-ordered chunks of records go."""

    def write(self, df: pd.DataFrame) -> None: ...

    def close(self) -> None:
        """The run is over (every record was written)."""

    def abort(self) -> None:
        """The run failed: leave nothing behind."""


class Recorder:
    """Collects finished requests and streams their records (module docstring)."""

    def __init__(self, tenants: list[str], models: list[str], accuracy: list[float], *,
                 admission: bool, shedding: bool, sink: Sink,
                 tallies: Sequence[SummaryTally] = (),
                 transforms: Sequence[Callable[[pd.DataFrame], None]] = (),
                 chunk_rows: int | None = None, max_waiting: int | None = None) -> None:
        self.tenants, self.models, self.accuracy = tenants, models, accuracy
        """The run's lists, read per chunk (so tenants registered late are named)."""
        self.admission, self.shedding = admission, shedding
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
            parts.append(request_columns(self.buffer))
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
            self._emit(request_columns([]))
        self.sink.close()


class MemorySink:
    """Keeps every record: :meth:`frame` is the whole table (the API's default)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def write(self, df: pd.DataFrame) -> None:
        self.parts.append(df)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.parts = []

    def frame(self) -> pd.DataFrame:
        """The records (after :meth:`Recorder.close`)."""
        return self.parts[0] if len(self.parts) == 1 else pd.concat(self.parts)


class NullSink:
    """Drops the records (``--records none``: the summary is all that is kept)."""

    def write(self, df: pd.DataFrame) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class TableFile:
    """Writes records to ``path`` as they come: Parquet, one row group per chunk, or CSV
    (``.csv``), into a hidden file beside ``path`` (made at the first write). :meth:`close`
    finishes that file and :meth:`commit` renames it into place, so a command can put its
    records in place together with its other results (after a long attack's training, say),
    and a failed or killed run leaves no partial ``path``. A write that fails (a full disk)
    is a :class:`~sim.errors.UserError` naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.csv = path.suffix == ".csv"
        self.tmp: Path | None = None
        self.writer: pq.ParquetWriter | None = None

    def write(self, df: pd.DataFrame) -> None:
        try:
            if self.tmp is None:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
                os.close(fd)
                self.tmp = Path(tmp)
                if self.csv:
                    df.to_csv(self.tmp, index=False)
                    return
            if self.csv:
                df.to_csv(self.tmp, index=False, header=False, mode="a")
                return
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table)
        except OSError as e:
            self.abort()
            raise UserError(f"{self.path}: cannot write it ({e.strerror or e})") from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                self.abort()
                raise UserError(f"{self.path}: cannot write it ({e.strerror or e})") from None
            self.writer = None

    def commit(self) -> None:
        """Put the finished file in place (after :meth:`close`)."""
        if self.tmp is None:
            raise ValueError("TableFile.commit: nothing was written")
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise UserError(f"{self.path}: cannot write it ({e.strerror or e})") from None
        self.tmp = None

    def abort(self) -> None:
        """Drop the partial file (the run failed)."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


class SampleSink:
    """A uniform random sample of ``n`` records (bottom-``n`` of a random key per record, so
    every subset of ``n`` is equally likely), passed to ``out`` in id order on close."""

    def __init__(self, n: int, rng: np.random.Generator, out: Sink) -> None:
        self.n, self.rng, self.out = n, rng, out
        self.keys = np.zeros(0)
        self.kept: pd.DataFrame | None = None

    def write(self, df: pd.DataFrame) -> None:
        keys = np.concatenate([self.keys, self.rng.random(len(df))])
        both = df if self.kept is None else pd.concat([self.kept, df])
        if len(keys) > self.n:
            top = np.sort(np.argpartition(keys, self.n - 1)[:self.n])
            keys, both = keys[top], both.iloc[top]
        self.keys, self.kept = keys, both

    def close(self) -> None:
        if self.kept is not None:
            self.out.write(self.kept.sort_values("id", kind="stable"))
        self.out.close()

    def abort(self) -> None:
        self.kept = None
        self.out.abort()


class RingSink:
    """The latest ``maxlen`` records, in id order (the live server's ``/admin/records``:
    bounded memory however long it serves). Small writes (a flush per page request) are
    merged into parts of at least ``PART_ROWS`` rows, so neither memory per record nor a
    page's cost grows with how often records are asked for. A row that comes after a higher
    id (a request the recorder gave up waiting for) is dropped, not served out of order."""

    PART_ROWS = 4096

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.parts: deque[pd.DataFrame] = deque()
        self.size = 0
        self.dropped = 0
        """Records no longer held (pushed out of the ring, or late): only ever grows."""
        self.last_id = -1

    def write(self, df: pd.DataFrame) -> None:
        late = df["id"].to_numpy() <= self.last_id
        if late.any():
            self.dropped += int(late.sum())
            df = df[~late]
        if not len(df):
            return
        self.last_id = int(df["id"].iloc[-1])
        if self.parts and len(self.parts[-1]) < self.PART_ROWS:
            last = self.parts[-1]   # its tenants: a prefix of df's (the list only grows)
            last = last.assign(tenant=last["tenant"].cat.set_categories(
                df["tenant"].cat.categories))
            self.parts[-1] = pd.concat([last, df])
        else:
            self.parts.append(df)
        self.size += len(df)
        while self.size - len(self.parts[0]) >= self.maxlen:
            n = len(self.parts.popleft())
            self.size -= n
            self.dropped += n
        extra = self.size - self.maxlen
        if extra > 0:
            self.parts[0] = self.parts[0].iloc[extra:]
            self.size -= extra
            self.dropped += extra

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def page(self, after: int, limit: int, tenants: list[str]) -> pd.DataFrame | None:
        """Up to ``limit`` records with ids above ``after``, in id order (None: none), their
        tenants named from ``tenants`` (the list grows while a live server runs)."""
        out: list[pd.DataFrame] = []
        got = 0
        for part in self.parts:
            if got >= limit:
                break
            ids = part["id"].to_numpy()
            if ids[-1] <= after:
                continue
            part = part.iloc[int(np.searchsorted(ids, after, side="right")):][:limit - got]
            part = part.assign(tenant=part["tenant"].cat.set_categories(tenants))
            out.append(part)
            got += len(part)
        return pd.concat(out) if out else None


def sink_for(mode: str, path: Path | None, rng: Callable[[], np.random.Generator]
             ) -> tuple[Sink, TableFile | None]:
    """The sink of a ``--records`` mode (:func:`parse_records`), writing to ``path`` (None:
    kept in memory), and the file to :meth:`~TableFile.commit` once the run's other results
    are written (None when there is none)."""
    kind, n = parse_records(mode)
    if kind == "none":
        return NullSink(), None
    table = None if path is None else TableFile(path)
    out: Sink = MemorySink() if table is None else table
    return (out if kind == "all" else SampleSink(n, rng(), out)), table


def parse_records(mode: str) -> tuple[str, int]:
    """``all``, ``none`` or ``sample:N`` (N >= 1) as (kind, N); ValueError naming the
    option otherwise."""
    if mode in ("all", "none"):
        return mode, 0
    kind, _, n = mode.partition(":")
    if kind == "sample" and n.isascii() and n.isdigit() and int(n) >= 1:
        return "sample", int(n)
    raise ValueError(f"records: {mode!r} is not one of all, none, sample:N (N >= 1)")
