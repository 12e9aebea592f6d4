"""The ``n`` entries of largest magnitude of a flat float32 vector, at memory speed.

What the ``topk`` mask and FTGD's ``magnitude`` control select. Instead of an argpartition
over the whole vector (and an index array the size of the model), a strided sample brackets
the n-th largest |x|; one blocked pass collects the few entries above the bracket, and an
exact selection among them finds the threshold. The result is exact: every entry with
|x| above the n-th largest, then, of the entries equal to it, the lowest indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["largest_magnitudes", "largest_magnitudes_tensor"]

#: Entries per block of the pass over the vector (16 MiB of float32).
BLOCK = 1 << 22
#: Entries in the sample that brackets the threshold.
SAMPLE = 1 << 20
_MAGNITUDE = np.uint32(0x7FFFFFFF)


def index_dtype(size: int) -> np.dtype:
    """The smallest integer type that indexes a vector of ``size`` entries (int32 below 2**31)."""
    return np.dtype(np.int32) if size <= np.iinfo(np.int32).max else np.dtype(np.int64)


def magnitude_bits(x: np.ndarray) -> np.ndarray:
    """|x| as unsigned integers that order as |x| does (float32 bits, sign cleared: -0 = +0 and
    NaN above infinity, as ``np.argpartition`` of ``np.abs`` orders them)."""
    return x.view(np.uint32) & _MAGNITUDE


def _at_least(x: np.ndarray, low: int) -> np.ndarray:
    """Indices (int64, ascending) of the entries whose magnitude bits are at least ``low``."""
    parts = [np.flatnonzero(magnitude_bits(x[s : s + BLOCK]) >= low) + s for s in range(0, x.size, BLOCK)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _candidates(x: np.ndarray, n: int) -> np.ndarray:
    """Ascending indices of at least ``n`` entries that include the ``n`` largest |x|."""
    sample = np.sort(magnitude_bits(x[:: max(1, x.size // SAMPLE)]))
    for slack in (1.25, 2.0, 8.0):
        rank = sample.size - int(np.ceil(min(1.0, slack * n / x.size) * sample.size)) - 64
        if rank <= 0:
            break
        found = _at_least(x, int(sample[rank]))
        if found.size >= n:
            return found
    return np.arange(x.size, dtype=np.int64)


def largest_magnitudes(x: np.ndarray, n: int) -> np.ndarray:
    """Sorted flat indices (``index_dtype(x.size)``) of the ``n`` entries of largest |x| of a
    float32 vector; ties at the threshold go to the lowest indices."""
    x = np.ascontiguousarray(x).reshape(-1)
    if x.dtype != np.float32:
        raise TypeError(f"largest_magnitudes needs a float32 vector, got {x.dtype}")
    if not 0 <= n <= x.size:
        raise ValueError(f"cannot select {n} of {x.size} entries")
    if n == 0:
        return np.zeros(0, index_dtype(x.size))
    found = _candidates(x, n)
    bits = magnitude_bits(x[found])
    threshold = np.partition(bits, bits.size - n)[bits.size - n]
    above = bits > threshold
    tied = bits == threshold
    keep = above | (tied & (np.cumsum(tied) <= n - int(np.count_nonzero(above))))
    return found[keep].astype(index_dtype(x.size))


def largest_magnitudes_tensor(x: Any, n: int) -> np.ndarray:
    """``largest_magnitudes`` of a float32 torch tensor, computed where the tensor lives (e.g. on
    a GPU): the same indices, ties included; only the ``n`` indices cross to the host."""
    import torch

    x = x.reshape(-1)
    if x.dtype != torch.float32:
        raise TypeError(f"largest_magnitudes_tensor needs a float32 tensor, got {x.dtype}")
    if not 0 <= n <= x.numel():
        raise ValueError(f"cannot select {n} of {x.numel()} entries")
    if n == 0:
        return np.zeros(0, index_dtype(x.numel()))
    magnitude = x.abs()
    threshold = torch.topk(magnitude, n, sorted=False).values.min()
    above = torch.nonzero(magnitude > threshold).flatten()
    tied = torch.nonzero(magnitude == threshold).flatten()[: n - above.numel()]
    chosen = torch.cat([above, tied]).sort().values
    return chosen.cpu().numpy().astype(index_dtype(x.numel()))
