"""What ``stats`` and ``stats_partial`` share: matrix checks, ranks, Spearman r and
permutation p-values (internal; plugins use :mod:`lingspace_harness.stats`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserError

#: Permuted entries are processed in blocks of about this many values.
CHUNK = 1 << 20
#: Permuted statistics within this of the observed one count as "at least as large".
TIE = 1e-10


def _rankdata(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Average ranks (``scipy.stats.rankdata``, imported on first use: it takes 0.4 s)."""
    from scipy.stats import rankdata as ranks

    return ranks(values) if axis is None else ranks(values, axis=axis)


def as_square(m: Any, what: str = "matrix") -> np.ndarray:
    """``m`` as a float64 N x N array; None, NaN and infinities become NaN (missing)."""
    try:
        a = np.array(m, dtype=float)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} must be a numeric matrix") from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise UserError(f"{what} must be a square matrix, got shape {a.shape}")
    a[~np.isfinite(a)] = np.nan
    return a


def is_symmetric(m: Any, *, rtol: float = 1e-7, atol: float = 1e-10) -> bool:
    """Whether ``m`` equals its transpose (within rounding; missing entries must mirror too)."""
    a = as_square(m)
    return bool(np.allclose(a, a.T, rtol=rtol, atol=atol, equal_nan=True))


def _check_counts(permutations: int, bootstraps: int = 0) -> None:
    if permutations < 1:
        raise UserError(f"permutations must be at least 1, not {permutations}")
    if bootstraps < 0:
        raise UserError(f"bootstraps must be at least 0, not {bootstraps}")


def _p_value(null: np.ndarray, observed: float) -> float:
    """One-sided (k + 1) / (n + 1); a NaN permuted value counts as at least as large."""
    k = int(np.count_nonzero(~(null < observed - TIE)))
    return (k + 1) / (len(null) + 1)


def _permutations(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    return rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)


def _defined(a: np.ndarray) -> np.ndarray:
    """Tasks with at least one defined off-diagonal entry."""
    off = ~np.isnan(a)
    np.fill_diagonal(off, False)
    return off.any(axis=0) | off.any(axis=1)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _rankdata(x), _rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def _spearman_rows(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman r of each row of ``g`` with ``y``, over the entries defined in both."""
    valid = ~np.isnan(g) & ~np.isnan(y)
    # Missing entries rank after all defined ones, so defined entries get ranks 1..k.
    rx = np.where(valid, _rankdata(np.where(valid, g, np.inf), axis=1), np.nan)
    ry = np.where(valid, _rankdata(np.where(valid, np.broadcast_to(y, g.shape), np.inf), axis=1), np.nan)
    return _pearson_rows(rx, ry)


def _pearson_rows(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``g`` with ``y`` (broadcast), over the entries defined in both."""
    y = np.broadcast_to(y, g.shape)
    valid = ~np.isnan(g) & ~np.isnan(y)
    k = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(valid, g - (np.where(valid, g, 0.0).sum(axis=1) / k)[:, None], 0.0)
        cy = np.where(valid, y - (np.where(valid, y, 0.0).sum(axis=1) / k)[:, None], 0.0)
        return (cx * cy).sum(axis=1) / np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
