"""Claims about an ordered series of runs (checkpoints, model sizes), after Weber et al. (2024),
"Interpretability of Language Models via Task Spaces", each with a verdict at ``alpha``.

- ``generalisation`` (per space and hypothesis): the Mantel r with the hypothesis and, for a
  0/1 hypothesis (a shared label), the within − between difference grow along the runs.
- ``sharing`` (the ``overlap`` space): the mean off-diagonal overlap and its excess over the
  chance Jaccard index of two random top-k masks, ``k / (2 - k)``, grow along the runs.
- ``stability`` (per space): consecutive runs' spaces correlate (Mantel p < alpha), and no
  step's Spearman r falls below the bootstrap interval of the other steps (an "incisive stage").

A trend is the Spearman rho of a statistic against the run order, with permutation p-values
over run orders (exact when ``n! <= permutations``), for 4 or more runs. Every consecutive pair
of runs, and the first against the last, gets the statistic's difference with a 95% task-
bootstrap interval: the shared tasks are resampled with replacement and both runs' statistics
recomputed on the same resample (a task drawn twice is never paired with itself). Verdicts:
``supported`` when every statistic the claim rests on moves the expected way (trend p < alpha,
or with fewer than 4 runs the first-to-last interval excludes 0), ``contradicted`` when every
one moves the other way, else ``inconclusive``. Undefined (NaN) cells are left out, and counted.
Beside every Mantel test stands a partial Mantel test per control hypothesis, and the partial
r (``controls``) is tested along the runs like the other statistics (trend and bootstrap steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, AnalysisOptions, Registries, UserError
from lingspace_harness.stats import mantel, partial_mantel

from .claim_statistics import (
    correlation,
    difference,
    direction,
    interval,
    is_binary,
    mean_entry,
    missing_cells,
    number,
    partial_correlation,
    per_resample,
    resamples,
    steps,
    trend,
)

ALPHA = 0.05
OVERLAP = "overlap"
ORDERS = ("given", "steps", "params")
STEP = re.compile(r"step(\d+)")


@dataclass
class ClaimOptions:
    """Settings for :func:`claims`."""

    permutations: int = 10000
    bootstraps: int = 1000
    seed: int = 0
    controls: list[str] = field(default_factory=lambda: ["lexical"])
    hypothesis_files: list[Path] = field(default_factory=list)
    alpha: float = ALPHA


def run_order(runs: list[dict[str, Any]], by: str) -> list[int]:
    """Indices of ``runs`` in order: as given, by the revision's ``step<N>``, or by ``model.n_params``."""
    if by not in ORDERS:
        raise UserError(f"compare: --order-by must be one of {', '.join(ORDERS)}, not {by!r}")
    if by == "given":
        return list(range(len(runs)))
    keys = []
    for i, r in enumerate(runs, start=1):
        if by == "steps":
            revision = str((r.get("config") or {}).get("revision") or "")
            match = STEP.search(revision)
            if not match:
                raise UserError(
                    f"compare --order-by steps: run {i} has no step<N> in its revision ({revision or 'none'})"
                )
            keys.append(int(match.group(1)))
        else:
            n = (r.get("model") or {}).get("n_params")
            if not isinstance(n, int) or isinstance(n, bool):
                raise UserError(f"compare --order-by params: run {i} has no model.n_params in its results.json")
            keys.append(n)
    return sorted(range(len(runs)), key=keys.__getitem__)


# -- statistics on task resamples ----------------------------------------------------------


def statistic(labels: list[str], values: np.ndarray, o: ClaimOptions) -> dict[str, Any]:
    """A statistic's per-run values, trend, steps and direction."""
    out = {
        "values": [number(v) for v in values[:, 0]],
        "trend": trend([number(v) for v in values[:, 0]], o.permutations, o.seed),
        "steps": steps(labels, values),
    }
    return {**out, "direction": direction(out, o.alpha)}


def verdict(directions: list[int | None]) -> str:
    defined = [d for d in directions if d is not None]
    if defined and all(d == 1 for d in defined):
        return "supported"
    if defined and all(d == -1 for d in defined):
        return "contradicted"
    return "inconclusive"


# -- the claims ----------------------------------------------------------------------------


def _tests(
    space: np.ndarray, hypothesis: np.ndarray, controls: dict[str, np.ndarray | None], o: ClaimOptions
) -> dict[str, Any]:
    """A Mantel test and, beside it, a partial Mantel test per control."""
    test = mantel(space, hypothesis, permutations=o.permutations, seed=o.seed)
    out = {"r": test["r"], "p": test["p"], "partial": {}}
    for name, control in controls.items():
        if control is not None:
            t = partial_mantel(space, hypothesis, control, permutations=o.permutations, seed=o.seed)
            out["partial"][name] = {k: t[k] for k in ("r", "p", "reason") if k in t}
    return out


def generalisation(
    base: dict[str, Any],
    name: str,
    matrices: list[np.ndarray],
    hyps: list[dict[str, np.ndarray]],
    idx: np.ndarray,
    o: ClaimOptions,
) -> dict[str, Any]:
    """The claim that the space follows hypothesis ``name`` more closely along the runs."""
    labels = base["runs"]
    per_run = [h[name] for h in hyps]
    stats = {
        "mantel_r": statistic(
            labels, np.array([per_resample(correlation(m, h), idx) for m, h in zip(matrices, per_run)]), o
        )
    }
    if all(is_binary(h) for h in per_run):
        stats["difference"] = statistic(
            labels, np.array([per_resample(difference(m, h), idx) for m, h in zip(matrices, per_run)]), o
        )
    tests = [
        _tests(m, h, {c: hs.get(c) for c in o.controls if c != name}, o) for m, h, hs in zip(matrices, per_run, hyps)
    ]
    controls = {}
    for c in o.controls:
        if c == name or any(hs.get(c) is None for hs in hyps):
            continue
        values = np.array(
            [per_resample(partial_correlation(m, h, hs[c]), idx) for m, h, hs in zip(matrices, per_run, hyps)]
        )
        if np.isfinite(values[:, 0]).any():
            controls[c] = statistic(labels, values, o)
    return {
        **base,
        "claim": "generalisation",
        "hypothesis": name,
        "expected": "increase",
        "verdict": verdict([s["direction"] for s in stats.values()]),
        "statistics": stats,
        "tests": tests,
        "controls": controls,
    }


def sharing(
    base: dict[str, Any], matrices: list[np.ndarray], chances: list[float | None], idx: np.ndarray, o: ClaimOptions
) -> dict[str, Any]:
    """The claim that parameter sharing (mean overlap, and its excess over chance) grows."""
    labels = base["runs"]
    means = np.array([per_resample(mean_entry(m), idx) for m in matrices])
    stats = {"mean_overlap": statistic(labels, means, o)}
    if all(c is not None for c in chances):
        stats["excess"] = statistic(labels, means - np.array(chances, dtype=float)[:, None], o)
    return {
        **base,
        "claim": "sharing",
        "expected": "increase",
        "chance": chances,
        "verdict": verdict([s["direction"] for s in stats.values()]),
        "statistics": stats,
    }


def stability(
    base: dict[str, Any],
    matrices: list[np.ndarray],
    hyps: list[dict[str, np.ndarray]],
    idx: np.ndarray,
    o: ClaimOptions,
) -> dict[str, Any]:
    """The claim that consecutive spaces correlate and no step is an incisive stage: a step whose
    Spearman r lies below the others' pooled bootstrap interval (two-sided, level 1 - alpha / steps,
    Bonferroni over the steps); one above it (``outside: above``) is recorded but no break."""
    labels = base["runs"]
    r = np.array([per_resample(correlation(a, b), idx) for a, b in zip(matrices, matrices[1:])])
    out_steps = []
    for j in range(len(r)):
        test = _tests(matrices[j + 1], matrices[j], {c: hyps[j + 1].get(c) for c in o.controls}, o)
        step = {
            "a": labels[j],
            "b": labels[j + 1],
            "spearman": number(r[j, 0]),
            "p": test["p"],
            "partial": test["partial"],
            "ci": interval(r[j, 1:]),
            "others": None,
            "outside": None,
            "incisive": None,
        }
        others = np.concatenate([r[k, 1:] for k in range(len(r)) if k != j]) if len(r) > 1 else np.array([])
        others = others[np.isfinite(others)]
        if len(others) >= 2 and step["spearman"] is not None:
            tail = 100 * o.alpha / (2 * len(r))
            low, high = np.percentile(others, [tail, 100 - tail])
            step["others"] = [float(low), float(high)]
            step["outside"] = "below" if step["spearman"] < low else "above" if step["spearman"] > high else None
            step["incisive"] = step["outside"] == "below"
        out_steps.append(step)
    flags = [s["incisive"] for s in out_steps]
    if any(flags):
        result = "contradicted"
    elif None not in flags and all(s["p"] is not None and s["p"] < o.alpha for s in out_steps):
        result = "supported"
    else:
        result = "inconclusive"
    return {
        **base,
        "claim": "stability",
        "expected": "no incisive stage",
        "verdict": result,
        "steps": out_steps,
        "incisive": [f"{s['a']} -> {s['b']}" for s in out_steps if s["incisive"]],
    }


def space_claims(
    name: str,
    tasks: list[str],
    matrices: list[np.ndarray],
    runs: list[dict[str, Any]],
    labels: list[str],
    ctx: AnalysisContext,
    o: ClaimOptions,
) -> list[dict[str, Any]]:
    """Every claim about one space; ``matrices`` are the runs' (symmetrised) spaces over ``tasks``."""
    idx = resamples(len(tasks), o.bootstraps, o.seed)
    hyps = [ctx.hypotheses(tasks, r) for r in runs]
    base = {
        "space": name,
        "runs": labels,
        "n_runs": len(runs),
        "n_tasks": len(tasks),
        "n_cells": len(tasks) * (len(tasks) - 1) // 2,
        "missing": {label: missing_cells(m) for label, m in zip(labels, matrices)},
    }
    names = [h for h in hyps[0] if h not in o.controls and all(h in hs for hs in hyps)]
    out = [generalisation(base, h, matrices, hyps, idx, o) for h in names]
    if name == OVERLAP:
        chances = []
        for r in runs:
            k = r["spaces"][name].get("k")
            chances.append(k / (2 - k) if isinstance(k, (int, float)) and 0 < k <= 1 else None)
        out.append(sharing(base, matrices, chances, idx, o))
    out.append(stability(base, matrices, hyps, idx, o))
    return out


def claims(
    harness: Registries,
    runs: list[dict[str, Any]],
    labels: list[str],
    matrices: dict[str, list[np.ndarray]],
    tasks: dict[str, list[str]],
    o: ClaimOptions,
) -> dict[str, Any]:
    """All claims over the runs (in order) for each compared space, as in comparison.json."""
    ctx = AnalysisContext(AnalysisOptions(hypothesis_files=list(o.hypothesis_files)), harness)
    known = set(harness.hypotheses.names()) | {Path(p).stem for p in o.hypothesis_files}
    unknown = [c for c in o.controls if c not in known and c != "lexical"]
    if unknown:
        raise UserError(f"compare: unknown control hypothesis {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    out: list[dict[str, Any]] = []
    notes = []
    for name, ms in matrices.items():
        out += space_claims(name, tasks[name], ms, runs, labels, ctx, o)
        missing = {label: n for label, n in out[-1]["missing"].items() if n}
        if missing:
            notes.append(
                f"space {name!r}: undefined cells left out ("
                + ", ".join(f"{label}: {n}" for label, n in missing.items())
                + ")"
            )
    for c in o.controls:
        if not any(c in claim.get("controls", {}) for claim in out):
            notes.append(
                f"control {c!r} does not apply to these runs' tasks (lexical needs task vocabularies)"
                if c == "lexical"
                else f"control {c!r} does not apply to these runs' tasks"
            )
    return {
        "alpha": o.alpha,
        "controls": list(o.controls),
        "n_permutations": o.permutations,
        "n_bootstraps": o.bootstraps,
        "notes": notes,
        "claims": out,
    }
