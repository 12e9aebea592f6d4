"""What the claims need to know beyond the spaces themselves: which hypotheses nest in which
(from the labels), overlap's chance level per run and whether two runs' masks are comparable,
and Holm's family-wise adjustment over a comparison's tests.

- Nesting: a 0/1 hypothesis A is *nested* in B when every same-A pair is a same-B pair (in every
  run, over the pairs where both are defined), and *equivalent* to B when each is nested in the
  other. Field contains phenomenon this way, so a field effect can come entirely from phenomenon.
- Overlap's null: ``spaces.overlap.null`` (``kind: stratified``, an expected Jaccard per pair from
  random masks with each task's per-tensor counts) where the run has it; otherwise the uniform
  null ``k / (2 - k)`` (``kind: uniform``). Sharing is the excess over it.
- Architecture: runs whose parameter layouts differ (``model.n_params``, or the tensor types of
  overlap's ``mask_shares``; the model name where neither is recorded) have masks over different
  parameters, so their overlaps are not comparable and sharing gets no verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from lingspace_harness.stats import holm

from .claim_statistics import is_binary, number


def _nested(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every defined same-``a`` off-diagonal pair is a same-``b`` pair (and there is one)."""
    off = ~np.eye(len(a), dtype=bool) & ~np.isnan(a) & ~np.isnan(b)
    same = off & (a == 1)
    return bool(same.any() and (b[same] == 1).all())


def nesting(hyps: list[dict[str, np.ndarray]]) -> dict[str, list[list[str]]]:
    """``nested``: [lower, higher] pairs (strict), ``equivalent``: [a, b] pairs (a before b in the
    hypotheses' order), over the 0/1 hypotheses that every run has."""
    names = [n for n in hyps[0] if all(n in h and h[n] is not None and is_binary(h[n]) for h in hyps)]
    inside = {(a, b): all(_nested(h[a], h[b]) for h in hyps) for a in names for b in names if a != b}
    nested = [[a, b] for (a, b), v in inside.items() if v and not inside[(b, a)]]
    equivalent = [[a, b] for (a, b), v in inside.items() if v and inside[(b, a)] and names.index(a) < names.index(b)]
    return {"nested": nested, "equivalent": equivalent}


def lower_levels(structure: dict[str, list[list[str]]], higher: str) -> list[str]:
    """The labels directly below ``higher``: nested in it and in no other label nested in it."""
    below = [a for a, b in structure["nested"] if b == higher]
    strictly = {(a, b) for a, b in structure["nested"]}
    return [a for a in below if not any((a, c) in strictly for c in below if c != a)]


def null_matrix(run: dict[str, Any], space: str, tasks: list[str]) -> tuple[np.ndarray | float | None, str | None]:
    """Overlap's chance level over ``tasks``: the stratified null's per-pair matrix (or its mean
    ``chance`` without one), else the uniform ``k / (2 - k)``; (None, None) with neither."""
    info = run["spaces"][space]
    null = info.get("null")
    if isinstance(null, dict) and null.get("kind") == "stratified":
        if null.get("matrix") is not None:
            index = {t: i for i, t in enumerate(info["tasks"])}
            idx = [index[t] for t in tasks]
            m = np.array([[np.nan if v is None else v for v in row] for row in null["matrix"]], dtype=float)
            return m[np.ix_(idx, idx)], "stratified"
        if null.get("chance") is not None:
            return float(null["chance"]), "stratified"
    k = info.get("k")
    if isinstance(k, (int, float)) and 0 < k <= 1:
        return k / (2 - k), "uniform"
    return None, None


def chance_record(null: np.ndarray | float | None, kind: str | None) -> dict[str, Any]:
    """A run's chance level as the claim records it: ``kind`` and ``value`` (mean over pairs)."""
    if isinstance(null, np.ndarray):
        cells = null[np.triu_indices(len(null), 1)]
        value = number(np.nanmean(cells)) if np.isfinite(cells).any() else None
        return {"kind": kind, "value": value}
    return {"kind": kind, "value": null}


def architecture(run: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run's parameter layout: ``n_params`` and the tensor types of overlap's
    ``mask_shares`` where recorded (with their parameter shares, rounded), else the model name."""
    model = run.get("model") or {}
    shares = ((run.get("spaces") or {}).get("overlap") or {}).get("mask_shares") or {}
    types = {t: round(float(s.get("params") or 0.0), 6) for t, s in (shares.get("by_type") or {}).items()}
    n = model.get("n_params")
    if isinstance(n, int) and not isinstance(n, bool):
        return {"n_params": n, **({"tensor_types": types} if types else {})}
    if types:
        return {"tensor_types": types}
    return {"name": model.get("name") or (run.get("config") or {}).get("model")}


def comparable(runs: list[dict[str, Any]], labels: list[str]) -> str | None:
    """None when every run has the same architecture, else why the runs' masks are not comparable."""
    found = [architecture(r) for r in runs]
    if all(f == found[0] for f in found):
        return None
    what = "; ".join(
        f"{label}: {', '.join(f'{k}={v}' for k, v in f.items() if k != 'tensor_types')}"
        for label, f in zip(labels, found)
    )
    return f"the runs' parameter layouts differ ({what}): masks over different parameters are not comparable"


# -- Holm over a comparison's family -----------------------------------------------------------


def _p_slots(claim: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every (dict, key) holding a permutation p-value of one claim."""
    for test in claim.get("tests", []) + claim.get("steps", []):
        if "p" in test:
            yield test, "p"
        for group in ("partial", "beyond"):
            for sub in (test.get(group) or {}).values():
                yield sub, "p"
    for stat in list(claim.get("statistics", {}).values()) + list(claim.get("controls", {}).values()):
        for s in (stat, stat.get("corrected") or {}):
            if s.get("trend"):
                yield s["trend"], "p_increase"
                yield s["trend"], "p_decrease"


def adjust(claims: list[dict[str, Any]]) -> dict[str, Any]:
    """Holm-adjusted p-values beside every raw one (``p_holm``, ``p_increase_holm``, ...), over
    the family of all the comparison's claims tests; returns the family's description."""
    slots = [s for c in claims for s in _p_slots(c)]
    adjusted = holm([d.get(k) for d, k in slots])
    for (d, k), p in zip(slots, adjusted):
        d[f"{k}_holm"] = p
    return {
        "method": "Holm",
        "family_size": sum(p is not None for p in adjusted),
        "family": "every permutation p of the claims: per-run Mantel and partial Mantel tests, stability "
        "steps, and both one-sided order tests of every statistic (raw and corrected)",
    }
