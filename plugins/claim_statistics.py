"""Statistics behind the claims: task-bootstrap resamples of a space, per-resample correlations
(plain and partial) and differences, a trend test over ordered runs, intervals and step directions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lingspace_harness.stats import spearman_rows

#: Resampled entries are processed in blocks of about this many values.
CHUNK = 1 << 20
#: Permutation statistics within this of the observed one count as ties.
TIE = 1e-10


def resamples(n: int, bootstraps: int, seed: int) -> np.ndarray:
    """Row 0 the tasks as they are, then ``bootstraps`` draws of n tasks with replacement."""
    rng = np.random.default_rng(seed)
    return np.vstack([np.arange(n)[None, :], rng.integers(0, n, size=(bootstraps, n))])


def entries(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per resample (row of ``idx``), the upper-triangle entries over the drawn tasks; NaN for a
    task paired with itself and for undefined cells."""
    rows, cols = np.triu_indices(idx.shape[1], 1)
    a, b = idx[:, rows], idx[:, cols]
    return np.where(a == b, np.nan, m[a, b])


def per_resample(statistic: Callable[[np.ndarray], np.ndarray], idx: np.ndarray) -> np.ndarray:
    """``statistic`` over blocks of resamples, concatenated."""
    step = max(1, CHUNK // max(1, idx.shape[1] ** 2 // 2))
    return np.concatenate([statistic(idx[s : s + step]) for s in range(0, len(idx), step)])


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = mask & ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, x, 0.0).sum(axis=1) / mask.sum(axis=1)


def correlation(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Spearman r of two matrices' entries (a Mantel r), per resample."""
    return lambda idx: spearman_rows(entries(a, idx), entries(b, idx))


def partial_correlation(a: np.ndarray, b: np.ndarray, control: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Partial Spearman r of two matrices' entries given a control's (a partial Mantel r), per
    resample, over the entries defined in all three."""

    def statistic(idx: np.ndarray) -> np.ndarray:
        x, y, z = entries(a, idx), entries(b, idx), entries(control, idx)
        missing = np.isnan(x) | np.isnan(y) | np.isnan(z)
        x, y, z = (np.where(missing, np.nan, v) for v in (x, y, z))
        rxy, rxz, ryz = spearman_rows(x, y), spearman_rows(x, z), spearman_rows(y, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))

    return statistic


def difference(space: np.ndarray, hypothesis: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Mean entry where the 0/1 hypothesis is 1 minus where it is 0, per resample."""

    def statistic(idx: np.ndarray) -> np.ndarray:
        x, h = entries(space, idx), entries(hypothesis, idx)
        return _masked_mean(x, h == 1) - _masked_mean(x, h == 0)

    return statistic


def mean_entry(space: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda idx: _masked_mean(entries(space, idx), np.ones(1, dtype=bool))


def is_binary(h: np.ndarray) -> bool:
    values = set(np.unique(h[~np.eye(len(h), dtype=bool) & ~np.isnan(h)]).tolist())
    return values == {0.0, 1.0}


def missing_cells(m: np.ndarray) -> int:
    """Undefined cells in the upper triangle."""
    return int(np.isnan(m[np.triu_indices(len(m), 1)]).sum())


def number(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


# -- trends, steps and verdicts ------------------------------------------------------------


def trend(values: list[float | None], permutations: int, seed: int) -> dict[str, Any]:
    """Spearman rho of ``values`` against their positions, with one-sided permutation p-values
    for an increase and a decrease (over all orders when ``n! <= permutations``)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    keep = np.isfinite(v)
    n = int(keep.sum())
    out: dict[str, Any] = {"rho": None, "p_increase": None, "p_decrease": None, "n_runs": n, "exact": None}
    if n < 4:
        return {**out, "reason": f"{n} runs with this statistic; a trend test needs 4"}
    if np.ptp(v[keep]) == 0:
        return {**out, "reason": "the statistic is constant over the runs"}
    position, value = np.flatnonzero(keep).astype(float), v[keep]
    rho = float(spearman_rows(value[None, :], position)[0])
    exact = math.factorial(n) <= permutations
    if exact:
        orders = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        orders = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
    null = spearman_rows(value[orders], position)
    extra = 0 if exact else 1
    up = (np.count_nonzero(null >= rho - TIE) + extra) / (len(null) + extra)
    down = (np.count_nonzero(null <= rho + TIE) + extra) / (len(null) + extra)
    return {
        **out,
        "rho": rho,
        "p_increase": float(up),
        "p_decrease": float(down),
        "exact": exact,
        "n_permutations": len(null),
    }


def interval(replicates: np.ndarray) -> list[float] | None:
    finite = replicates[np.isfinite(replicates)]
    return [float(v) for v in np.percentile(finite, [2.5, 97.5])] if len(finite) >= 2 else None


def slope(values: np.ndarray) -> np.ndarray:
    """Per column (observed, replicates...), the least-squares slope of the runs' statistic on
    the run position, over the runs whose observed value is defined; NaN in a replicate where
    one of those runs' value is not. With 2 or 3 runs it is the first-to-last difference over
    (runs - 1), so its interval decides as the first-to-last interval does."""
    keep = np.isfinite(values[:, 0])
    if keep.sum() < 2:
        return np.full(values.shape[1], np.nan)
    x = np.flatnonzero(keep).astype(float)
    x -= x.mean()
    return (x / (x @ x)) @ values[keep]


def steps(labels: list[str], values: np.ndarray) -> list[dict[str, Any]]:
    """Each consecutive pair of runs' difference (and the first against the last) with its
    bootstrap interval; ``values`` is runs x (observed, replicates...)."""
    pairs = [(i, i + 1) for i in range(len(labels) - 1)] + ([(0, len(labels) - 1)] if len(labels) > 2 else [])
    return [
        {
            "a": labels[i],
            "b": labels[j],
            "difference": number(values[j, 0] - values[i, 0]),
            "ci": interval(values[j, 1:] - values[i, 1:]),
        }
        for i, j in pairs
    ]


def _sign(ci: list[float]) -> int:
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def direction(stat: dict[str, Any], alpha: float) -> tuple[int | None, str | None]:
    """+1 (increase), -1 (decrease) or 0, and the test that decided it; (None, None) where no
    test is defined. A direction must hold across task resamples: the slope's 95% bootstrap
    interval (``stat["slope"]["ci"]``) must exclude 0, and with 4 or more runs the order test
    (Spearman rho against run order, one-sided permutation p < alpha) must agree. With 2 or 3
    runs the slope interval is the first-to-last interval."""
    t, ci = stat["trend"], (stat.get("slope") or {}).get("ci")
    if ci is None:
        return None, None
    if t["n_runs"] < 4:
        return _sign(ci), "first-to-last interval"
    if t["rho"] is None:  # a constant statistic: no order, no direction
        return 0, "order test and slope interval"
    order = 1 if t["p_increase"] < alpha else -1 if t["p_decrease"] < alpha else 0
    return (order if order == _sign(ci) else 0), "order test and slope interval"
