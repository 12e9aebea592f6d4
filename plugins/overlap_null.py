"""The stratified null of mask overlap: the Jaccard index two masks would have if each task's
entries were drawn uniformly at random *within each tensor*, with the task's own count there.

Top-k masks are chosen over all parameters together, so they crowd into the same few tensors;
the uniform null k/(2-k) ignores that and understates chance. For tasks s, t with c_s,j and
c_t,j mask entries in tensor j (of n_j entries), the intersection of such random masks is a sum
of independent hypergeometric counts, with mean exactly

    E|M_s ∩ M_t| = Σ_j c_s,j c_t,j / n_j,

and the expected Jaccard index is taken as E|∩| / (|M_s| + |M_t| - E|∩|): the ratio at the
mean intersection (first order). The Jaccard index is convex in the intersection, so this
slightly understates E[J]: with S = |M_s| + |M_t|, by about S Var|∩| / (E|∩| (S - E|∩|)²) of
it, and as Var|∩| <= E|∩| (a sum of hypergeometric counts), by under 2 / (S - E|∩|): negligible
for masks of more than a few hundred entries (1e-6 for SmolLM2's 1% masks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lingspace_harness import ParamLayout

#: Variants of a run's data whose masks get their own null (``--split-half``).
HALVES = ("half-a", "half-b")
#: How many single tensors the diagnostic lists (by share of mask entries).
TOP_TENSORS = 5


def tensor_counts(masks: Sequence[np.ndarray], offsets: Sequence[int]) -> np.ndarray:
    """N x T: how many of each mask's (sorted flat) indices fall in each of the T tensors whose
    slices of the flat vector start at ``offsets[:-1]`` (``offsets[-1]`` is its size)."""
    bounds = np.asarray(offsets, dtype=np.int64)
    if not masks:
        return np.zeros((0, len(bounds) - 1), dtype=np.int64)
    return np.stack([np.diff(np.searchsorted(np.asarray(m), bounds)) for m in masks]).astype(np.int64)


def expected_intersection(counts: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """N x N: the mean intersection of random masks with these per-tensor counts (exact:
    the hypergeometric mean c_s,j c_t,j / n_j, summed over tensors)."""
    c = np.asarray(counts, dtype=np.float64)
    n = np.asarray(sizes, dtype=np.float64)
    return (c / np.where(n > 0, n, 1.0)) @ c.T


def stratified_jaccard(counts: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """N x N expected Jaccard index of per-tensor random masks (see the module's docstring);
    the diagonal is 1, and NaN (undefined) for an empty mask, as between two empty masks."""
    inter = expected_intersection(counts, sizes)
    total = np.asarray(counts, dtype=np.float64).sum(axis=1)
    union = total[:, None] + total[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.nan)
    np.fill_diagonal(out, np.where(total > 0, 1.0, np.nan))
    return out


def off_diagonal_mean(matrix: np.ndarray) -> float | None:
    """The mean of the defined off-diagonal cells; None (undefined) if there is none."""
    m = np.asarray(matrix, dtype=np.float64)
    cells = m[~np.eye(len(m), dtype=bool)]
    cells = cells[np.isfinite(cells)]
    return float(cells.mean()) if cells.size else None


def stratified_null(masks: Sequence[np.ndarray], layout: ParamLayout) -> dict[str, Any]:
    """The null as results.json records it: ``kind``, ``chance`` (mean over off-diagonal
    pairs) and ``matrix`` (expected Jaccard per pair, diagonal 1)."""
    matrix = stratified_jaccard(tensor_counts(masks, layout.offsets), layout.sizes)
    return {"kind": "stratified", "chance": off_diagonal_mean(matrix), "matrix": matrix}


def tensor_type(layout: ParamLayout, name: str) -> str:
    """A parameter's name without its block: ``self_attn.o_proj.weight`` for every block's
    ``model.layers.N.self_attn.o_proj.weight``; a parameter outside the blocks keeps its name."""
    layer = layout.layer_of(name)
    return name if layer == "other" else ("." + name).split(f".{layer}.", 1)[-1]


def _shares(groups: Sequence[str], entries: np.ndarray, sizes: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per group (in first-seen order): its share of the mask entries and of the parameters."""
    out: dict[str, dict[str, float | None]] = {}
    total_entries, total_sizes = entries.sum(), sizes.sum()
    for group in dict.fromkeys(groups):
        chosen = np.array([g == group for g in groups])
        mask = float(entries[chosen].sum() / total_entries) if total_entries else None
        out[group] = {"mask": mask, "params": float(sizes[chosen].sum() / total_sizes)}
    return out


def mask_shares(masks: Sequence[np.ndarray], layout: ParamLayout, top: int = TOP_TENSORS) -> dict[str, Any]:
    """Where the masks' entries sit (pooled over tasks) against where the parameters are: by
    tensor type, by layer, and the ``top`` single tensors by share of mask entries (a share is
    None when every mask is empty)."""
    entries = tensor_counts(masks, layout.offsets).sum(axis=0)
    sizes = np.asarray(layout.sizes, dtype=np.int64)
    tensors = _shares(list(layout.names), entries, sizes)
    ranked = sorted(tensors, key=lambda t: -(tensors[t]["mask"] or 0.0))[:top] if entries.sum() else []
    return {
        "by_type": _shares([tensor_type(layout, n) for n in layout.names], entries, sizes),
        "by_layer": _shares([layout.layer_of(n) for n in layout.names], entries, sizes),
        "top_tensors": {t: tensors[t] for t in ranked},
    }
