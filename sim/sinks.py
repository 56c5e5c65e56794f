"""Where a run's records go: the sinks of the record stream (:mod:`sim.recorder`).

Each takes id-ordered chunks of records as a run produces them and keeps what its job needs:
all of them in memory (:class:`MemorySink`, the API's default), a file written as they come
(:class:`TableFile`: Parquet row groups or CSV, put in place only with the run's other
results), a uniform sample (:class:`SampleSink`), nothing (:class:`NullSink`: the summary is
tallied before the sink), or the latest few (:class:`RingSink`, the live server's
``/admin/records``). :func:`sink_for` maps ``zoosim simulate --records`` to one (issue 17).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from sim.output import write_failed

if TYPE_CHECKING:
    import pyarrow.parquet as pq


class Sink(Protocol):
    """Where id-ordered chunks of records go."""

    def write(self, df: pd.DataFrame) -> None: ...

    def close(self) -> None:
        """The run is over (every record was written)."""

    def abort(self) -> None:
        """The run failed: leave nothing behind."""


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
            raise write_failed(self.path, e) from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                self.abort()
                raise write_failed(self.path, e) from None
            self.writer = None

    def commit(self) -> None:
        """Put the finished file in place (after :meth:`close`)."""
        if self.tmp is None:
            raise ValueError("TableFile.commit: nothing was written")
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise write_failed(self.path, e) from None
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

