"""Per-request records: the columns of completed requests (docs/architecture.md principle 5).

The engine hands each finished batch to a :class:`~sim.recorder.Recorder`, which turns the
requests into columns here, a chunk at a time (:func:`request_columns`, then
:func:`records_of`, which adds the derived SLO columns), so the records are built vectorised
and streamed instead of held (issue 17). Every metric is derived from these records. With an
admission defense (:mod:`defense.base`) the records also say which requests it flagged and
which it rejected: a rejected request has no model (null), worker and batch -1, finishes at its
arrival and meets no SLO. With overload shedding on (``cluster.shedding``) a ``shed`` column
marks the requests the engine refused, unserved in the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.request import Request

if TYPE_CHECKING:
    import pandas as pd

Columns = dict[str, np.ndarray]
"""Raw columns of a chunk of completed requests (codes for tenant and model)."""


def _col(values: list[float] | list[int] | list[bool], dtype: str) -> np.ndarray:
    return np.fromiter(values, dtype=dtype, count=len(values))


def request_columns(done: list[Request], frontend: bool = False) -> Columns:
    """The raw columns of completed requests, in the order given; with ``frontend`` (the
    front-end model, :mod:`sim.frontend`) also when each was sent and its answer read."""
    b = [r.batch for r in done]
    batches = [x for x in b if x is not None]
    if len(batches) != len(done):
        raise ValueError("request_columns takes completed requests only")
    return {
        "id": _col([r.id for r in done], "i8"),
        "tenant": _col([r.tenant for r in done], "i8"),
        "arrival_s": _col([r.arrival for r in done], "f8"),
        "start_s": _col([x.start for x in batches], "f8"),
        "finish_s": _col([x.finish for x in batches], "f8"),
        "model": _col([r.model for r in done], "i8"),
        "worker": _col([x.worker for x in batches], "i4"),
        "batch_id": _col([x.id for x in batches], "i8"),
        "batch_size": _col([x.size for x in batches], "i4"),
        "size": _col([r.size for r in done], "i4"),
        "acc_req": _col([r.acc_req for r in done], "f8"),
        "lat_req_ms": _col([r.lat_req_ms for r in done], "f8"),
        "acc_spec": _col([r.acc_spec for r in done], "f8"),
        "lat_spec_ms": _col([r.lat_spec_ms for r in done], "f8"),
        "feasible": _col([r.feasible for r in done], "?"),
        "flagged": _col([r.flagged for r in done], "?"),
        "shed": _col([r.shed for r in done], "?"),
        **({"sent_s": _col([r.sent for r in done], "f8"),
            "done_s": _col([r.done for r in done], "f8")} if frontend else {}),
    }


def take_rows(cols: Columns, rows: np.ndarray | slice) -> Columns:
    """The chosen rows of every column."""
    return {k: v[rows] for k, v in cols.items()}


def concat_columns(parts: list[Columns]) -> Columns:
    """Chunks of columns, one after the other."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def records_of(cols: Columns, tenants: list[str], models: list[str], accuracy: list[float],
               admission: bool = False, shedding: bool = False) -> pd.DataFrame:
    """The records of a chunk of raw columns, with the derived SLO columns; ``admission``
    adds the ``flagged`` and ``rejected`` columns, ``shedding`` the ``shed`` column. With
    the front-end model's ``sent_s`` and ``done_s``, ``latency_ms`` is the client's (sent to
    answer read) and ``server_latency_ms`` the serving system's (arrival to batch end)."""
    import pandas as pd

    df = pd.DataFrame({k: v for k, v in cols.items() if k not in ("flagged", "shed")})
    df["tenant"] = pd.Categorical.from_codes(cols["tenant"], categories=pd.Index(tenants))
    df["model"] = pd.Categorical.from_codes(cols["model"], categories=pd.Index(models))
    if "sent_s" in cols:
        df["latency_ms"] = (df["done_s"] - df["sent_s"]) * 1000
        df["server_latency_ms"] = (df["finish_s"] - df["arrival_s"]) * 1000
    else:
        df["latency_ms"] = (df["finish_s"] - df["arrival_s"]) * 1000
    df["wait_ms"] = (df["start_s"] - df["arrival_s"]) * 1000
    codes = cols["model"]
    model_acc = np.asarray(accuracy, dtype=float)[codes] if len(accuracy) else \
        np.zeros(len(codes))
    df["met_accuracy"] = model_acc >= df["acc_req"].to_numpy()
    df["met_latency"] = df["latency_ms"] <= df["lat_req_ms"]
    if admission or shedding:
        served = codes >= 0
        df["met_accuracy"] &= served
        df["met_latency"] &= served
        shed = cols["shed"] if shedding else None
        if admission:
            df["flagged"] = cols["flagged"]
            df["rejected"] = ~served if shed is None else ~served & ~shed
        if shed is not None:
            df["shed"] = shed
    df["met_slo"] = df["met_accuracy"] & df["met_latency"]
    return df


def records_frame(requests: list[Request], tenants: list[str], models: list[str],
                  accuracy: list[float], admission: bool = False,
                  shedding: bool = False) -> pd.DataFrame:
    """One row per completed request among ``requests``, by id (:func:`records_of`)."""
    done = [r for r in requests if r.batch is not None and r.batch.finish >= 0]
    done.sort(key=lambda r: r.id)
    return records_of(request_columns(done), tenants, models, accuracy, admission, shedding)
