"""Seeded data augmentation for surrogate training: small random shifts and pixel noise.

A query-limited attacker gets more out of each victim answer by training on jittered copies of
its queries (the answer is kept: a 2-pixel shift does not change a digit's class). Knockoff Nets
(Orekondy et al., CVPR'19) and CopycatCNN (Correia-Silva et al., IJCNN'18) train on the queried
images as they are; augmentation is our optional extra. Every draw comes from the caller's
``torch.Generator``, never from torch's global RNG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) shifted by its own integer (dy, dx) in
    [-max_shift, max_shift], the uncovered border filled with zeros (background)."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0 or len(x) == 0:
        return x.clone()
    s = max_shift
    h, w = x.shape[-2:]
    shifts = torch.randint(-s, s + 1, (len(x), 2), generator=gen)
    padded = F.pad(x, (s, s, s, s))
    out = torch.empty_like(x)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            rows = torch.nonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).flatten()
            if len(rows):
                out[rows] = padded[rows, :, s - dy:s - dy + h, s - dx:s - dx + w]
    return out


def gaussian_noise(x: torch.Tensor, sd: float, gen: torch.Generator) -> torch.Tensor:
    """``x`` plus N(0, sd^2) pixel noise, clipped to [0, 1]."""
    if sd < 0:
        raise ValueError(f"noise sd must be >= 0, got {sd}")
    if sd == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return (x + sd * noise).clamp_(0.0, 1.0)


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2,
            noise_sd: float = 0.0) -> torch.Tensor:
    """A freshly jittered copy of ``x``: random shifts, then (if ``noise_sd`` > 0) noise."""
    return gaussian_noise(random_shift(x, max_shift, gen), noise_sd, gen)
