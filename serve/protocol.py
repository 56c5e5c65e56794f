"""The HTTP contract of ``zoosim serve`` (README, "Live serving"): bodies, and input coding.

``POST /v1/classify`` takes ``{"inputs": ..., "accuracy": A, "latency_ms": L}`` (and ``model``
where the server exposes its model API). ``inputs`` is either nested lists of numbers of shape
``(n, *input_shape)`` (or one input, ``input_shape``), or the compact binary form
``{"dtype": "float32", "shape": [n, ...], "data": "<base64 of little-endian C-order bytes>"}``.
The answer is ``{"id": ..., "labels": [...], "probabilities": [[...]]}`` (probabilities only
when the server answers with them); it never names the model. Errors are 4xx with
``{"error": "<one clear message>"}``.

Clients (the load generator, the live attacker) use :func:`encode_inputs`; the server uses
:func:`decode_inputs`, whose :class:`BadInput` names what is wrong.
"""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field, StrictFloat, StrictInt

from sim.schema import Strict

BINARY_DTYPES = ("float32", "float64")
"""Element types the binary form accepts (cast to float32)."""

MAX_DIMS = 8
"""Most dimensions the binary form's shape may have (a batch of images has 4)."""

CLIENT_HEADER = "X-Client-Id"
"""Names the client in the server's records and to its defenses when auth is off (default:
its address); a claim, ignored when auth is on (:mod:`serve.auth`)."""

def _finite(v: int | float) -> float:
    """A JSON number as a finite float (a 400-digit integer is not a latency)."""
    try:
        f = float(v)
    except OverflowError:
        raise ValueError("must be a finite number") from None
    if not math.isfinite(f):
        raise ValueError("must be a finite number")
    return f


Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]


class ClassifyBody(Strict):
    """The body of ``POST /v1/classify`` (inputs are checked apart, by :func:`decode_inputs`)."""

    inputs: Any
    accuracy: Annotated[Number, Field(ge=0, le=100)]
    """Requested accuracy, percent."""
    latency_ms: Annotated[Number, Field(gt=0)]
    """Requested latency, milliseconds (at most the server's ``max_latency_ms``)."""
    model: Annotated[str, Field(min_length=1)] | None = None
    """A model name: only where the server runs with ``model_api`` (INFaaS's model-variant
    queries); the oracle attack uses it."""


class BadInput(ValueError):
    """Inputs that do not fit the server's models; the message says how."""

    status = 422


class TooManyInputs(BadInput):
    """More inputs in one request than the server takes."""

    status = 413


def encode_inputs(x: np.ndarray) -> dict[str, Any]:
    """The compact binary form of ``x`` (sent as float32)."""
    a = np.ascontiguousarray(x, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape),
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_inputs(obj: Any, in_shape: tuple[int, ...], max_inputs: int) -> np.ndarray:
    """``(n, *in_shape)`` float32 from either input form; :class:`BadInput` otherwise."""
    x = _binary(obj) if isinstance(obj, dict) else _nested(obj)
    shape = tuple(in_shape)
    if x.shape == shape:
        x = x[None]
    elif x.shape[1:] != shape:
        want = ", ".join(map(str, shape))
        raise BadInput(f"inputs: expected shape (n, {want}) or ({want}), got {tuple(x.shape)}")
    if len(x) == 0:
        raise BadInput("inputs: no inputs (n = 0)")
    if len(x) > max_inputs:
        raise TooManyInputs(f"inputs: {len(x)} inputs in one request; this server takes at most "
                       f"{max_inputs}")
    if not np.isfinite(x).all():
        raise BadInput("inputs: values must be finite numbers (found NaN or infinity)")
    return x


def _short(value: Any, chars: int = 64) -> str:
    """``repr(value)``, cut to ``chars``: an error message never echoes a client's megabytes."""
    text = repr(value)
    return text if len(text) <= chars else text[:chars] + "..."


def _nested(obj: Any) -> np.ndarray:
    if not isinstance(obj, list):
        raise BadInput(f"inputs: expected nested lists of numbers or "
                       f"{{dtype, shape, data}}, got {type(obj).__name__}")
    try:
        a = np.array(obj)
    except ValueError:
        raise BadInput("inputs: ragged nested lists (every row must have the same length)") \
            from None
    if a.dtype.kind not in "iuf":
        kind = "booleans" if a.dtype.kind == "b" else "non-numbers"
        raise BadInput(f"inputs: expected numbers, found {kind} (dtype {a.dtype})")
    return a.astype(np.float32)


def _binary(obj: dict[str, Any]) -> np.ndarray:
    missing = [k for k in ("dtype", "shape", "data") if k not in obj]
    if missing:
        raise BadInput(f"inputs: the binary form needs dtype, shape and data; missing {missing}")
    extra = sorted(set(obj) - {"dtype", "shape", "data"})
    if extra:
        raise BadInput(f"inputs: unknown keys {extra} in the binary form")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype not in BINARY_DTYPES:
        raise BadInput(f"inputs.dtype: {_short(dtype)} is not accepted; use one of "
                       f"{list(BINARY_DTYPES)}")
    if isinstance(shape, list) and len(shape) > MAX_DIMS:
        raise BadInput(f"inputs.shape: {len(shape)} dimensions; inputs have at most "
                       f"{MAX_DIMS}")
    if (not isinstance(shape, list) or not shape or
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadInput(f"inputs.shape: expected a list of non-negative integers, got "
                       f"{_short(shape)}")
    if not isinstance(data, str):
        raise BadInput("inputs.data: expected a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise BadInput("inputs.data: not valid base64") from None
    item = np.dtype(dtype).itemsize
    if len(raw) != math.prod(shape) * item:
        raise BadInput(f"inputs.data: {len(raw)} bytes, but shape {shape} of {dtype} needs "
                       f"{math.prod(shape) * item}")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape) \
        .astype(np.float32)
