"""lm-eval hooks for the lingspace_blimp tasks: ``process_results`` (``!function
utils.process_results``) and the ``margin`` metric it reports, registered with lm-eval (its
name, mean aggregation and direction) so that lm-eval 0.5 does not put a placeholder in its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lm_eval.api.metrics  # noqa: F401  (fills lm-eval's metric registry first; 0.4 does it only here)
from lm_eval.api.registry import metric_registry, register_metric


def margin_of(lls: Sequence[float], gold: int = 0) -> float:
    """log p(gold choice) - log p(the other one)."""
    return float(lls[gold] - lls[1 - gold])


def process_results(doc: dict, results: list) -> dict:
    """``acc``: log p(good) > log p(bad); ``margin``: log p(good) - log p(bad).

    ``results`` holds one ``(loglikelihood, is_greedy)`` per choice: good first, then bad.
    """
    lls = [r[0] if isinstance(r, (tuple, list)) else r for r in results]
    return {"acc": float(lls[0] > lls[1]), "margin": margin_of(lls)}


def margin(references: Any, predictions: Any) -> float:
    """``margin`` as a registered lm-eval 0.5 metric: ``references`` is the gold choice's index,
    ``predictions.lls`` the choices' log-likelihoods (used by a task without our process_results)."""
    return margin_of(list(predictions.lls), int(references))


if "margin" not in metric_registry:  # lm-eval imports this file once per task YAML that names it
    register_metric(metric="margin", higher_is_better=True, aggregation="mean", output_type="multiple_choice")(margin)
