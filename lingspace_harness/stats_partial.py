"""Partial Mantel tests, with the residual (Freedman-Lane) or the raw permutation scheme, and
Holm's step-down adjustment of a family of p-values.

Plugins import these from :mod:`lingspace_harness.stats`, which re-exports them. The partial statistic
is the partial Spearman r: the partial Pearson r of the ranks of the off-diagonal upper
triangles.

Under ``"freedman-lane"`` (Freedman & Lane 1983; for partial Mantel tests, Legendre 2000,
J. Stat. Comput. Simul. 67: 37-73, and Legendre & Legendre, *Numerical Ecology*, 2012,
10.5.2) the space's ranks are regressed on the control's, the residuals' matrix is permuted
(rows and columns together), the fitted values are added back, and the partial r is
recomputed. ``"raw"`` permutes the space's rows and columns themselves (Smouse, Long &
Sokal 1986): liberal when the control is structured, because permuting the space also breaks
its relation with the control.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import UserError
from .stats_base import (
    CHUNK,
    _check_counts,
    _defined,
    _p_value,
    _pearson_rows,
    _permutations,
    _rankdata,
    _spearman,
    _spearman_rows,
    as_square,
    is_symmetric,
)

__all__ = ["holm", "partial_mantel"]

#: Permutation schemes of :func:`partial_mantel`, the default first.
SCHEMES = ("freedman-lane", "raw")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input's order. None and NaN p-values stay
    None and do not count in the family (its size is the number of defined p-values)."""
    p = np.array([np.nan if v is None else float(v) for v in pvalues], dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise UserError("p-values must lie in [0, 1]")
    out: list[float | None] = [None] * len(p)
    defined = np.flatnonzero(np.isfinite(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    for i, q in zip(order, adjusted):
        out[int(i)] = float(q)
    return out


def _partial(rxy: Any, rxz: Any, ryz: Any) -> Any:
    """Partial correlation of x and y given z from the three pairwise correlations."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


def _null_raw(
    a: np.ndarray, y: np.ndarray, z: np.ndarray, perms: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Permuted partial r, permuting the space ``a``'s rows and columns together. When ``a`` is
    symmetric and every entry is defined, its ranks are computed once and gathered."""
    n = len(a)
    x = a[rows, cols]
    complete = not (np.isnan(x).any() or np.isnan(y).any() or np.isnan(z).any())
    out = np.empty(len(perms))
    step = max(1, CHUNK // len(rows))
    if complete and is_symmetric(a):
        table = np.zeros((n, n))
        table[rows, cols] = table[cols, rows] = _rankdata(x)
        flat = table.ravel()
        ry, rz = (r - r.mean() for r in (_rankdata(y), _rankdata(z)))
        rx = table[rows, cols] - table[rows, cols].mean()
        # permuted ranks keep their mean, so uncentred ones against centred ry, rz suffice
        dy, dz = np.sqrt((rx @ rx) * (ry @ ry)), np.sqrt((rx @ rx) * (rz @ rz))
        ryz = ry @ rz / np.sqrt((ry @ ry) * (rz @ rz))
        for s in range(0, len(perms), step):
            g = flat[perms[s : s + step][:, rows] * n + perms[s : s + step][:, cols]]
            out[s : s + step] = _partial(g @ ry / dy, g @ rz / dz, ryz)
        return out
    flat = a.ravel()
    ny, nz = np.isnan(y), np.isnan(z)
    for s in range(0, len(perms), step):
        g = flat[perms[s : s + step][:, rows] * n + perms[s : s + step][:, cols]]
        yy = np.where(np.isnan(g), np.nan, np.broadcast_to(y, g.shape))
        out[s : s + step] = _partial(
            _spearman_rows(np.where(nz, np.nan, g), y),
            _spearman_rows(np.where(ny, np.nan, g), z),
            _spearman_rows(yy, z),
        )
    return out


def _null_freedman_lane(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, n: int, perms: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Permuted partial r under Freedman-Lane: ``x`` (the space's pairs) is ranked and regressed
    on ``z``'s ranks over the pairs defined in all three; the symmetric matrix of residuals is
    permuted and added back to the fitted values. A permuted residual that lands on a pair
    undefined in the data leaves that pair out."""
    valid = ~np.isnan(x) & ~np.isnan(y) & ~np.isnan(z)
    rx, ry, rz = (np.full(len(x), np.nan) for _ in range(3))
    for r, v in ((rx, x), (ry, y), (rz, z)):
        r[valid] = _rankdata(v[valid])
    zc = rz - np.nanmean(rz)
    fitted = np.nanmean(rx) + (np.nansum((rx - np.nanmean(rx)) * zc) / np.nansum(zc * zc)) * zc
    e = rx - fitted
    table = np.full((n, n), np.nan)
    table[rows, cols] = table[cols, rows] = e
    flat = table.ravel()
    out = np.empty(len(perms))
    step = max(1, CHUNK // len(rows))
    if valid.all():  # permuted residuals keep their sum (0) and squares: two products per permutation
        ey = (ry - ry.mean()) - (ry @ zc / (zc @ zc)) * zc
        ee, eyey, zz = e @ e, ey @ ey, zc @ zc
        for s in range(0, len(perms), step):
            g = flat[perms[s : s + step][:, rows] * n + perms[s : s + step][:, cols]]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[s : s + step] = (g @ ey) / np.sqrt((ee - (g @ zc) ** 2 / zz) * eyey)
        return out
    for s in range(0, len(perms), step):
        # NaN where the pair or the residual permuted onto it is undefined (ry, rz: where the pair is)
        g = fitted + flat[perms[s : s + step][:, rows] * n + perms[s : s + step][:, cols]]
        yy = np.where(np.isnan(g), np.nan, np.broadcast_to(ry, g.shape))
        out[s : s + step] = _partial(_pearson_rows(g, ry), _pearson_rows(g, rz), _pearson_rows(yy, rz))
    return out


def partial_mantel(
    space: Any,
    hypothesis: Any,
    control: Any,
    *,
    permutations: int = 10000,
    seed: int = 0,
    permutation: str = "freedman-lane",
) -> dict[str, Any]:
    """Partial Mantel test: the partial Spearman r between the off-diagonal upper triangle of
    ``space`` and of ``hypothesis`` given ``control``, with a one-sided permutation p-value
    ((k + 1) / (n + 1)) under ``permutation``: ``"freedman-lane"`` (residuals of the space on
    the control permuted; the default) or ``"raw"`` (the space permuted).

    Entries missing in any of the three matrices are left out, and so are tasks with no
    defined entry in one of them. Returns ``r, p, n_permutations, n_tasks, n_pairs,
    permutation``, plus ``reason`` where r is None (fewer than 3 tasks or 4 pairs, a constant
    matrix, or a hypothesis that the control determines).
    """
    if permutation not in SCHEMES:
        raise UserError(f"permutation must be one of {', '.join(SCHEMES)}, not {permutation!r}")
    a, h, c = as_square(space, "space"), as_square(hypothesis, "hypothesis"), as_square(control, "control")
    if not a.shape == h.shape == c.shape:
        raise UserError(f"space, hypothesis and control differ in shape: {a.shape}, {h.shape}, {c.shape}")
    _check_counts(permutations)
    keep = _defined(a) & _defined(h) & _defined(c)
    a, h, c = (m[np.ix_(keep, keep)] for m in (a, h, c))
    n = len(a)
    out: dict[str, Any] = {"r": None, "p": None, "n_permutations": permutations, "n_tasks": n, "n_pairs": 0}
    out["permutation"] = permutation
    if n < 3:
        return {**out, "reason": f"{n} tasks with defined entries; a partial Mantel test needs 3"}
    rows, cols = np.triu_indices(n, 1)
    x, y, z = a[rows, cols], h[rows, cols], c[rows, cols]
    valid = ~np.isnan(x) & ~np.isnan(y) & ~np.isnan(z)
    out["n_pairs"] = int(valid.sum())
    if valid.sum() < 4:
        return {**out, "reason": "fewer than 4 task pairs defined in all three matrices"}
    for values, name in ((x, "space"), (y, "hypothesis"), (z, "control")):
        if np.ptp(values[valid]) == 0:
            return {**out, "reason": f"the {name} is constant over these tasks"}
    ryz = _spearman(y[valid], z[valid])
    if abs(ryz) > 1 - 1e-9:
        return {**out, "reason": "the control determines the hypothesis's ranks"}
    r = float(_partial(_spearman(x[valid], y[valid]), _spearman(x[valid], z[valid]), ryz))
    perms = _permutations(np.random.default_rng(seed), n, permutations)
    both = ~np.isnan(y) & ~np.isnan(z)
    y, z = np.where(both, y, np.nan), np.where(both, z, np.nan)
    if permutation == "raw":
        null = _null_raw(a, y, z, perms, rows, cols)
    else:
        null = _null_freedman_lane(x, y, z, n, perms, rows, cols)
    return {**out, "r": r, "p": _p_value(null, r)}
