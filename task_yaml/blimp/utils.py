"""lm-eval hooks for the lingspace_blimp tasks (referenced as ``!function utils.process_results``)."""
from __future__ import annotations


def process_results(doc: dict, results: list) -> dict:
    """``acc``: log p(good) > log p(bad); ``margin``: log p(good) - log p(bad).

    ``results`` holds one ``(loglikelihood, is_greedy)`` per choice: good first, then bad.
    """
    good, bad = (r[0] if isinstance(r, (tuple, list)) else r for r in results)
    return {"acc": float(good > bad), "margin": float(good - bad)}
