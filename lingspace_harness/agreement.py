"""Agreement of a clustering with labels: adjusted Rand index and normalised mutual
information, each with a seeded permutation p-value."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .errors import UserError
from .stats import _check_counts, _codes, _p_value, _permutations

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["cluster_agreement"]


def _comb2(x: Any) -> Any:
    return x * (x - 1) / 2


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def cluster_agreement(
    labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable], *, permutations: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Adjusted Rand index and normalised mutual information (arithmetic-mean normalisation),
    each with a one-sided permutation p-value (``labels_pred`` permuted over items).

    Conventions as in scikit-learn: two identical trivial partitions (one cluster each, or all
    singletons) have ARI 1; NMI is 1 when both are a single cluster.
    """
    if len(labels_true) != len(labels_pred):
        raise UserError(f"{len(labels_true)} true labels but {len(labels_pred)} predicted")
    _check_counts(permutations)
    n = len(labels_true)
    if n < 2:
        raise UserError("cluster agreement needs at least 2 items")
    t, p = _codes(labels_true), _codes(labels_pred)
    kt, kp = int(t.max()) + 1, int(p.max()) + 1
    rows, cols = np.bincount(t, minlength=kt).astype(float), np.bincount(p, minlength=kp).astype(float)
    sum_a, sum_b, pairs = _comb2(rows).sum(), _comb2(cols).sum(), _comb2(float(n))
    expected, maximum = sum_a * sum_b / pairs, (sum_a + sum_b) / 2
    h_t, h_p = _entropy(rows, n), _entropy(cols, n)
    norm = (h_t + h_p) / 2
    outer = np.outer(rows, cols)

    def scores(tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = _comb2(tables).sum(axis=(1, 2))
        ari = np.ones(len(tables)) if maximum == expected else (index - expected) / (maximum - expected)
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(tables > 0, tables / n * np.log(tables * n / outer), 0.0)
        mi = np.clip(terms.sum(axis=(1, 2)), 0, None)
        nmi = np.ones(len(tables)) if norm == 0 else mi / norm
        return ari, nmi

    def tables_of(pred: np.ndarray) -> np.ndarray:
        m = len(pred)
        idx = (np.arange(m)[:, None] * (kt * kp) + t[None, :] * kp + pred).ravel()
        return np.bincount(idx, minlength=m * kt * kp).reshape(m, kt, kp).astype(float)

    ari, nmi = (float(v[0]) for v in scores(tables_of(p[None, :])))
    perms = _permutations(np.random.default_rng(seed), n, permutations)
    null_ari, null_nmi = scores(tables_of(p[perms]))
    return {
        "ari": ari,
        "ari_p": _p_value(null_ari, ari),
        "nmi": nmi,
        "nmi_p": _p_value(null_nmi, nmi),
        "n_permutations": permutations,
    }
