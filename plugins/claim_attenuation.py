"""Attenuation of the claims' statistics by each run's noise.

A run's Mantel r with a (noise-free) hypothesis is attenuated by the square root of its space's
reliability: r_observed ~ r_true * sqrt(r_full), with r_full the Spearman-Brown corrected
split-half r (``lingspace_harness.stats.split_half_reliability``). Where every run carries
split halves (``spaces[m].split_half = {a, b}``), each correlation-type statistic (Mantel r,
partial Mantel r) is divided by sqrt(r_full) on every bootstrap replicate, with r_full recomputed
from the halves over the same resample of tasks, so the interval carries the reliability's own
uncertainty. The halves are symmetrised as the compared spaces are. A replicate whose split-half r
is not positive has no corrected value (NaN, left out of the interval and counted there as any
undefined replicate).

Within - between differences give way to the rank-based statistic instead of being divided by
sqrt(r_full): a mean difference of cosines or Jaccard indices shrinks towards chance by a factor
that depends on the noise's size relative to each task's signal, not on the reliability alone, so
no sqrt(r_full) correction is right for it; with a 0/1 hypothesis the Spearman Mantel r *is* the
rank-based within - between contrast (a rank-biserial correlation over the same pairs), scale-free
and attenuated as any correlation. So where the correction applies the raw difference is reported
but does not vote (``vote: none``), and the corrected Mantel r decides.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness.stats import spearman_rows, symmetrise

from .claim_statistics import entries, number, per_resample


def halves(run: dict[str, Any], space: str, tasks: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's split halves of ``space`` over ``tasks`` (symmetrised), or None without them."""
    info = (run.get("spaces") or {}).get(space) or {}
    split = info.get("split_half")
    if not isinstance(split, dict) or split.get("a") is None or split.get("b") is None:
        return None
    index = {t: i for i, t in enumerate(info.get("tasks") or [])}
    if any(t not in index for t in tasks):
        return None
    idx = [index[t] for t in tasks]
    a, b = (np.asarray(split[h], dtype=float)[np.ix_(idx, idx)] for h in ("a", "b"))
    return symmetrise(a), symmetrise(b)


def reliability(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per resample (row of ``idx``), the Spearman-Brown corrected split-half r of the halves'
    upper-triangle entries over the drawn tasks; NaN where the split-half r is not positive."""

    def statistic(rows: np.ndarray) -> np.ndarray:
        r = spearman_rows(entries(a, rows), entries(b, rows))
        with np.errstate(invalid="ignore", divide="ignore"):  # r = -1: masked below, never used
            return np.where(r > 0, 2 * r / (1 + r), np.nan)

    return per_resample(statistic, idx)


def reliabilities(
    runs: list[dict[str, Any]], labels: list[str], space: str, tasks: list[str], idx: np.ndarray
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Runs x resamples r_full where every run carries split halves of ``space``, with a record
    for the claim (``applied``, each run's observed ``r_full``, or the ``reason`` it is not)."""
    found = [halves(r, space, tasks) for r in runs]
    lacking = [label for label, h in zip(labels, found) if h is None]
    if lacking:
        reason = f"no split halves in {', '.join(lacking)}" if len(lacking) < len(runs) else "no run has split halves"
        return None, {"applied": False, "reason": reason}
    rel = np.array([reliability(*h, idx) for h in found if h is not None])
    record = {
        "applied": True,
        "r_full": {label: number(v) for label, v in zip(labels, rel[:, 0])},
        "undefined_replicates": {label: int(np.isnan(v[1:]).sum()) for label, v in zip(labels, rel)},
    }
    return rel, record


def corrected(values: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """A correlation-type statistic (runs x resamples) divided by sqrt(r_full) on each resample."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return values / np.sqrt(rel)
