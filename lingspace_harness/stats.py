"""Statistics on task spaces: Mantel and partial Mantel tests, within/between-label contrasts
and split-half reliability (cluster agreement is in ``agreement``).

Pure numpy/scipy, vectorised over permutations and seeded (``numpy.random.default_rng(seed)``).
Matrices may hold NaN or None for missing entries; those are left out. Degenerate inputs (too
few tasks, a constant matrix) give ``None`` values and a ``reason`` instead of NaN, so results
can go straight into results.json.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .errors import UserError
from .stats_base import (
    CHUNK,
    _check_counts,
    _defined,
    _p_value,
    _permutations,
    _rankdata,
    _spearman,
    _spearman_rows,
    as_square,
    is_symmetric,
)
from .stats_partial import holm, partial_mantel

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["is_symmetric", "mantel", "partial_mantel", "spearman_rows", "within_between"]
__all__ += ["split_half_reliability", "symmetrise", "holm"]


def symmetrise(m: Any) -> np.ndarray:
    """``(m + m.T) / 2``."""
    a = as_square(m)
    return (a + a.T) / 2


def _null_symmetric(h: np.ndarray, x: np.ndarray, perms: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Permuted r when ``h`` is symmetric and complete: permuting it only reorders the ranks of
    its triangle, so they are computed once and gathered."""
    n = len(h)
    ranks = _rankdata(h[rows, cols])
    table = np.zeros((n, n))
    table[rows, cols] = table[cols, rows] = ranks
    rx = _rankdata(x)
    rx -= rx.mean()
    denom = np.sqrt((rx @ rx) * np.sum((ranks - ranks.mean()) ** 2))
    flat = table.ravel()
    out = np.empty(len(perms))
    step = max(1, CHUNK // len(rows))
    for s in range(0, len(perms), step):
        p = perms[s : s + step]
        out[s : s + step] = flat[p[:, rows] * n + p[:, cols]] @ rx / denom
    return out


def _null_general(h: np.ndarray, x: np.ndarray, perms: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Permuted r for any ``h`` (asymmetric, or with missing entries): ranks per permutation."""
    n = len(h)
    flat = h.ravel()
    out = np.empty(len(perms))
    step = max(1, CHUNK // len(rows))
    for s in range(0, len(perms), step):
        p = perms[s : s + step]
        out[s : s + step] = _spearman_rows(flat[p[:, rows] * n + p[:, cols]], x)
    return out


def mantel(
    space: Any, hypothesis: Any, *, permutations: int = 10000, seed: int = 0, triangle: str = "upper"
) -> dict[str, Any]:
    """Mantel test: Spearman r between the off-diagonal ``triangle`` ("upper" or "lower") of
    ``space`` and of ``hypothesis``, with a one-sided permutation p-value ((k + 1) / (n + 1)).

    The null permutes the hypothesis's rows and columns together (for symmetric matrices the
    same test as permuting the space's). Entries missing (undefined) in either matrix are left
    out: tasks with no defined entry in either are dropped, and the remaining pairs with a NaN
    on either side are dropped after each permutation. Returns ``r, p, n_permutations,
    n_tasks, n_pairs`` (the pairs r is computed on), ``n_undefined`` (pairs of the triangle
    left out because the space is undefined there) and ``n_left_out`` (all pairs left out),
    plus ``reason`` where r is None (fewer than 3 tasks, a constant matrix).
    """
    a, h = as_square(space, "space"), as_square(hypothesis, "hypothesis")
    if a.shape != h.shape:
        raise UserError(f"space and hypothesis differ in shape: {a.shape} vs {h.shape}")
    if triangle not in ("upper", "lower"):
        raise UserError(f"triangle must be 'upper' or 'lower', not {triangle!r}")
    _check_counts(permutations)
    full = np.triu_indices(len(a), 1) if triangle == "upper" else np.tril_indices(len(a), -1)
    undefined = int(np.isnan(a[full]).sum())
    keep = _defined(a) & _defined(h)
    a, h = a[np.ix_(keep, keep)], h[np.ix_(keep, keep)]
    n = len(a)
    rows, cols = np.triu_indices(n, 1) if triangle == "upper" else np.tril_indices(n, -1)
    x, y = a[rows, cols], h[rows, cols]
    valid = ~np.isnan(x) & ~np.isnan(y)
    out: dict[str, Any] = {
        "r": None,
        "p": None,
        "n_permutations": permutations,
        "n_tasks": n,
        "n_pairs": int(valid.sum()),
        "n_undefined": undefined,
        "n_left_out": len(full[0]) - int(valid.sum()),
    }
    if n < 3:
        return {**out, "reason": f"{n} tasks with defined entries; a Mantel test needs 3"}
    if valid.sum() < 3:
        return {**out, "reason": "fewer than 3 task pairs defined in both matrices"}
    for values, name in ((x, "space"), (y, "hypothesis")):
        if np.ptp(values[valid]) == 0:
            return {**out, "reason": f"the {name} is constant over these tasks"}
    r = _spearman(x[valid], y[valid])
    perms = _permutations(np.random.default_rng(seed), n, permutations)
    if valid.all() and is_symmetric(h):
        null = _null_symmetric(h, x, perms, rows, cols)
    else:
        null = _null_general(h, x, perms, rows, cols)
    return {**out, "r": r, "p": _p_value(null, r)}


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    return np.unique(np.array([str(v) for v in labels], dtype=object), return_inverse=True)[1].ravel()


def within_between(
    space: Any, labels: Sequence[Hashable | None], *, permutations: int = 10000, bootstraps: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Mean off-diagonal similarity within labels against between labels.

    Means run over ordered pairs i != j (so an asymmetric space counts both directions, as its
    symmetrised form would). Tasks whose label is None are left out, and so are undefined
    (NaN) entries: ``n_undefined`` counts those among the labelled tasks (ordered pairs).
    ``p`` is one-sided (within > between), permuting the labels over tasks. ``ci`` is a 95%
    percentile bootstrap interval of ``difference``: each replicate resamples the tasks with
    replacement, keeping each task's label, and uses every pair of distinct drawn tasks (a task
    drawn twice adds its pairs twice, never a pair with itself); replicates without a within or
    a between pair are dropped.
    """
    a = as_square(space, "space")
    _check_counts(permutations, bootstraps)
    if len(labels) != len(a):
        raise UserError(f"{len(labels)} labels for a space over {len(a)} tasks")
    labelled = np.array([v is not None for v in labels], dtype=bool)
    sub = a[np.ix_(labelled, labelled)]
    undefined = int(np.isnan(sub).sum() - np.isnan(np.diag(sub)).sum())
    keep = labelled & _defined(a)
    a = a[np.ix_(keep, keep)]
    codes = _codes([v for v, k in zip(labels, keep) if k])
    n = len(a)
    out: dict[str, Any] = {
        "within": None,
        "between": None,
        "difference": None,
        "p": None,
        "ci": None,
        "n_permutations": permutations,
        "n_bootstraps": bootstraps,
        "n_tasks": n,
        "n_labels": int(codes.max() + 1) if n else 0,
        "n_undefined": undefined,
    }
    valid = ~np.isnan(a)
    np.fill_diagonal(valid, False)
    vals = np.where(valid, a, 0.0)
    same = codes[:, None] == codes[None, :]
    count_w, count_b = int((valid & same).sum()), int((valid & ~same).sum())
    if n < 3 or count_w == 0 or count_b == 0:
        return {**out, "reason": "needs at least 3 labelled tasks with both within- and between-label pairs"}
    within, between = vals[same].sum() / count_w, vals[~same].sum() / count_b
    rng = np.random.default_rng(seed)
    null = _within_between_null(vals, valid, codes, _permutations(rng, n, permutations))
    ci = _within_between_ci(vals, valid, same, rng, bootstraps) if bootstraps > 0 else None
    return {
        **out,
        "within": float(within),
        "between": float(between),
        "difference": float(within - between),
        "p": _p_value(null, within - between),
        "ci": ci,
    }


def _within_between_null(vals: np.ndarray, valid: np.ndarray, codes: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Within - between for each row of ``perms`` (a permutation of the labels over tasks);
    ``vals`` holds 0 where ``valid`` is False (undefined entries, the diagonal)."""
    n, g = len(vals), int(codes.max()) + 1
    total_s, total_c = vals.sum(), valid.sum()
    null = np.empty(len(perms))
    step = max(1, CHUNK // (n * g))
    for s in range(0, len(perms), step):
        # one-hot labels, tasks first: (n, b, g); within sums are sum_g L_g' M L_g, one GEMM each
        onehot = np.eye(g)[codes[perms[s : s + step]]].transpose(1, 0, 2)
        flat = onehot.reshape(n, -1)
        sw, cw = (((m @ flat).reshape(onehot.shape) * onehot).sum(axis=(0, 2)) for m in (vals, valid * 1.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            null[s : s + step] = sw / cw - (total_s - sw) / (total_c - cw)
    return null


def _within_between_ci(
    vals: np.ndarray, valid: np.ndarray, same: np.ndarray, rng: np.random.Generator, bootstraps: int
) -> list[float] | None:
    """95% percentile bootstrap interval of within - between over resampled tasks (None when
    fewer than 2 replicates have both kinds of pair)."""
    n = len(vals)
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstraps).astype(float)

    def weighted(m: np.ndarray) -> np.ndarray:
        return ((draws @ m) * draws).sum(axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = weighted(vals * same) / weighted(valid * same) - weighted(vals * ~same) / weighted(valid * ~same)
    diffs = diffs[np.isfinite(diffs)]
    return [float(v) for v in np.percentile(diffs, [2.5, 97.5])] if len(diffs) >= 2 else None


def split_half_reliability(a: Any, b: Any) -> dict[str, Any]:
    """Spearman r between two spaces built from disjoint halves of the data, over their
    off-diagonal entries (the upper triangle if both are symmetric) defined in both halves
    (``n_pairs``; ``n_undefined`` counts those left out), and the Spearman-Brown
    estimate for the full data ``r_full = 2r / (1 + r)`` (None when r is not positive)."""
    x, y = as_square(a, "first half"), as_square(b, "second half")
    if x.shape != y.shape:
        raise UserError(f"split halves differ in shape: {x.shape} vs {y.shape}")
    n = len(x)
    if is_symmetric(x) and is_symmetric(y):
        rows, cols = np.triu_indices(n, 1)
    else:
        rows, cols = np.nonzero(~np.eye(n, dtype=bool))
    xv, yv = x[rows, cols], y[rows, cols]
    valid = ~np.isnan(xv) & ~np.isnan(yv)
    out: dict[str, Any] = {"r": None, "r_full": None, "n_pairs": int(valid.sum()), "n_undefined": int((~valid).sum())}
    if valid.sum() < 3:
        return {**out, "reason": "fewer than 3 task pairs defined in both halves"}
    if np.ptp(xv[valid]) == 0 or np.ptp(yv[valid]) == 0:
        return {**out, "reason": "a half is constant"}
    r = _spearman(xv[valid], yv[valid])
    if r <= 0:
        return {**out, "r": r, "reason": "no positive split-half correlation to correct"}
    return {**out, "r": r, "r_full": 2 * r / (1 + r)}


def spearman_rows(x: Any, y: Any) -> np.ndarray:
    """Spearman r of each row of ``x`` with ``y`` (one row, or one per row of ``x``), over the
    entries defined (not NaN) in both; NaN where fewer than 2 are, or a row is constant."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    return _spearman_rows(x, np.asarray(y, dtype=float))
