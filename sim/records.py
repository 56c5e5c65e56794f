"""Per-request records, derived after the run from the requests the front-end kept.

The engine keeps each request (a slotted object, a few hundred bytes) and the batch that served
it; columns are built once at the end, vectorised. Every metric is derived from these records
(docs/architecture.md principle 5). With an admission defense (:mod:`defense.base`) the records also
say which requests it flagged and which it rejected: a rejected request has no model (null),
worker and batch -1, finishes at its arrival and meets no SLO. With overload shedding on
(``cluster.shedding``) a ``shed`` column marks the requests the engine refused, unserved in the
same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.request import Request

if TYPE_CHECKING:
    import pandas as pd


def _col(values: list[float] | list[int] | list[bool], dtype: str) -> np.ndarray:
    return np.fromiter(values, dtype=dtype, count=len(values))


def records_frame(requests: list[Request], tenants: list[str], models: list[str],
                  accuracy: list[float], admission: bool = False,
                  shedding: bool = False) -> pd.DataFrame:
    """One row per completed request, by id, with the derived SLO columns; ``admission``
    adds the ``flagged`` and ``rejected`` columns, ``shedding`` the ``shed`` column."""
    import pandas as pd

    done = [r for r in requests if r.batch is not None and r.batch.finish >= 0]
    done.sort(key=lambda r: r.id)
    batches = [r.batch for r in done]
    b = [x for x in batches if x is not None]
    df = pd.DataFrame({
        "id": _col([r.id for r in done], "i8"),
        "tenant": pd.Categorical.from_codes(_col([r.tenant for r in done], "i8"),
                                            categories=pd.Index(tenants)),
        "arrival_s": _col([r.arrival for r in done], "f8"),
        "start_s": _col([x.start for x in b], "f8"),
        "finish_s": _col([x.finish for x in b], "f8"),
        "model": pd.Categorical.from_codes(_col([r.model for r in done], "i8"),
                                           categories=pd.Index(models)),
        "worker": _col([x.worker for x in b], "i4"),
        "batch_id": _col([x.id for x in b], "i8"),
        "batch_size": _col([x.size for x in b], "i4"),
        "size": _col([r.size for r in done], "i4"),
        "acc_req": _col([r.acc_req for r in done], "f8"),
        "lat_req_ms": _col([r.lat_req_ms for r in done], "f8"),
        "acc_spec": _col([r.acc_spec for r in done], "f8"),
        "lat_spec_ms": _col([r.lat_spec_ms for r in done], "f8"),
        "feasible": _col([r.feasible for r in done], "?"),
    })
    df["latency_ms"] = (df["finish_s"] - df["arrival_s"]) * 1000
    df["wait_ms"] = (df["start_s"] - df["arrival_s"]) * 1000
    codes = df["model"].cat.codes.to_numpy()
    model_acc = np.asarray(accuracy)[codes]
    df["met_accuracy"] = model_acc >= df["acc_req"].to_numpy()
    df["met_latency"] = df["latency_ms"] <= df["lat_req_ms"]
    if admission or shedding:
        served = codes >= 0
        df["met_accuracy"] &= served
        df["met_latency"] &= served
        shed = _col([r.shed for r in done], "?") if shedding else None
        if admission:
            df["flagged"] = _col([r.flagged for r in done], "?")
            df["rejected"] = ~served if shed is None else ~served & ~shed
        if shed is not None:
            df["shed"] = shed
    df["met_slo"] = df["met_accuracy"] & df["met_latency"]
    return df
