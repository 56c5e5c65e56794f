"""The attacker's query inputs (PSML §4): pool rows, optionally shifted by a few pixels.

An extraction input is a row ``(pool index, dx, dy)``; the simulated attack materialises the
rows after the run (to compute the victim's answers), the live attack before sending them.
"""

from __future__ import annotations

import numpy as np


def shifted(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pool inputs ``x[rows[:, 0]]`` shifted by ``dx`` (last axis) and, for images, ``dy``
    (second to last) pixels, zero-filled: the attacker's query-time augmentation."""
    out = np.zeros((len(rows), *x.shape[1:]), dtype=x.dtype)
    for i, (idx, dx, dy) in enumerate(rows.tolist()):
        shift = (dy, dx) if x.ndim == 4 else (dx,)
        axes = tuple(range(-len(shift), 0))
        out[i] = shift_array(x[idx], shift, axes)
    return out


def shift_array(a: np.ndarray, shift: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """``a`` moved by ``shift`` along ``axes``, zero-filled (not wrapped)."""
    if not any(shift):
        return a
    out = np.zeros_like(a)
    src: list[slice] = [slice(None)] * a.ndim
    dst: list[slice] = [slice(None)] * a.ndim
    for s, ax in zip(shift, axes, strict=True):
        n = a.shape[ax]
        src[ax] = slice(max(-s, 0), n - max(s, 0))
        dst[ax] = slice(max(s, 0), n - max(-s, 0))
    out[tuple(dst)] = a[tuple(src)]
    return out
