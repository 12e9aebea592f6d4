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

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["is_symmetric", "mantel", "partial_mantel", "spearman_rows", "within_between"]
__all__ += ["split_half_reliability", "symmetrise"]

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


def symmetrise(m: Any) -> np.ndarray:
    """``(m + m.T) / 2``."""
    a = as_square(m)
    return (a + a.T) / 2


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
    rx = np.where(valid, _rankdata(np.where(valid, g, np.inf), axis=1), 0.0)
    ry = np.where(valid, _rankdata(np.where(valid, np.broadcast_to(y, g.shape), np.inf), axis=1), 0.0)
    k = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(valid, rx - (rx.sum(axis=1) / k)[:, None], 0.0)
        cy = np.where(valid, ry - (ry.sum(axis=1) / k)[:, None], 0.0)
        return (cx * cy).sum(axis=1) / np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))


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


def _partial(rxy: Any, rxz: Any, ryz: Any) -> Any:
    """Partial correlation of x and y given z from the three pairwise correlations."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


def _null_partial(
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


def partial_mantel(
    space: Any, hypothesis: Any, control: Any, *, permutations: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Partial Mantel test: the partial Spearman r between the off-diagonal upper triangle of
    ``space`` and of ``hypothesis`` given ``control``, with a one-sided permutation p-value
    ((k + 1) / (n + 1)) permuting the space's rows and columns together.

    Entries missing in any of the three matrices are left out, and so are tasks with no
    defined entry in one of them. Returns ``r, p, n_permutations, n_tasks, n_pairs``, plus
    ``reason`` where r is None (fewer than 3 tasks or 4 pairs, a constant matrix, or a
    hypothesis that the control determines).
    """
    a, h, c = as_square(space, "space"), as_square(hypothesis, "hypothesis"), as_square(control, "control")
    if not a.shape == h.shape == c.shape:
        raise UserError(f"space, hypothesis and control differ in shape: {a.shape}, {h.shape}, {c.shape}")
    _check_counts(permutations)
    keep = _defined(a) & _defined(h) & _defined(c)
    a, h, c = (m[np.ix_(keep, keep)] for m in (a, h, c))
    n = len(a)
    out: dict[str, Any] = {"r": None, "p": None, "n_permutations": permutations, "n_tasks": n, "n_pairs": 0}
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
    null = _null_partial(a, np.where(both, y, np.nan), np.where(both, z, np.nan), perms, rows, cols)
    return {**out, "r": r, "p": _p_value(null, r)}


def spearman_rows(x: Any, y: Any) -> np.ndarray:
    """Spearman r of each row of ``x`` with ``y`` (one row, or one per row of ``x``), over the
    entries defined (not NaN) in both; NaN where fewer than 2 are, or a row is constant."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    return _spearman_rows(x, np.asarray(y, dtype=float))
