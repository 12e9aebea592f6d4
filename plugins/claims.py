"""Claims about an ordered series of runs (checkpoints, model sizes), after Weber et al. (2024),
"Interpretability of Language Models via Task Spaces", each with a verdict at ``alpha``.

- ``generalisation`` (per space and hypothesis): the Mantel r with the hypothesis and, for a
  0/1 hypothesis (a shared label), the within − between difference grow along the runs. For a
  label that contains a lower one (field contains phenomenon: every same-phenomenon pair is a
  same-field pair, derived from the labels, see claim_structure.py) the claim also rests on its
  effect beyond the lower label: the partial Mantel r given it (``mantel_r | phenomenon``).
- ``sharing`` (the ``overlap`` space): the mean off-diagonal overlap and its excess over the
  run's chance level (the stratified null where results.json has it, else ``k / (2 - k)``)
  grow along the runs; runs of different architectures get ``not comparable``.
- ``stability`` (per space): consecutive runs' spaces correlate (Mantel p < alpha), and no
  step's Spearman r falls below the bootstrap interval of the other steps (an "incisive stage").

Every statistic is computed on the shared tasks and on task-bootstrap resamples of them (both
runs' statistics on the same resample; a task drawn twice is never paired with itself). Its
direction must hold across those resamples: the 95% bootstrap interval of its least-squares
slope against the run order excludes 0 and, with 4 or more runs, the order test (Spearman rho
against the run order, one-sided permutation p < alpha, exact when ``n! <= permutations``)
agrees; with 2–3 runs the slope interval is the first-to-last interval (``decided_by``). Every
consecutive pair, and the first against the last, also gets its difference with an interval.
Where every run carries split halves, correlation-type statistics are also divided by
sqrt(reliability) on each resample (``corrected``, claim_attenuation.py) and the verdict uses
the corrected ones (``vote``; the raw difference gives way). Verdicts: ``supported`` when every
voting statistic moves the expected way, ``contradicted`` when every one moves the other way,
else ``inconclusive`` (``verdict_raw``: the same from the raw statistics). Undefined (NaN) cells
are left out, and counted. Beside every Mantel test stands a partial Mantel test per control
hypothesis, tested along the runs like the other statistics without voting; Holm-adjusted
p-values over the comparison's family of tests stand beside the raw ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, AnalysisOptions, Registries, UserError
from lingspace_harness.stats import mantel, partial_mantel

from .claim_attenuation import corrected, reliabilities
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
    slope,
    steps,
    trend,
)
from .claim_structure import adjust, chance_record, comparable, lower_levels, nesting, null_matrix
from .hypotheses import CONTROLS
from .run_series import ORDERS as ORDERS
from .run_series import refuse_one_model as refuse_one_model
from .run_series import run_order as run_order

ALPHA = 0.05
OVERLAP = "overlap"


@dataclass
class ClaimOptions:
    """Settings for :func:`claims`."""

    permutations: int = 10000
    bootstraps: int = 1000
    seed: int = 0
    controls: list[str] = field(default_factory=lambda: list(CONTROLS))
    hypothesis_files: list[Path] = field(default_factory=list)
    alpha: float = ALPHA
    allow_same_model: bool = False  # runs of one model (other seeds, tasks) are no trajectory: refused unless set


# -- statistics on task resamples ----------------------------------------------------------


def moves(labels: list[str], values: np.ndarray, o: ClaimOptions) -> dict[str, Any]:
    """How a statistic (runs x (observed, replicates...)) moves: values, order test, slope with its
    bootstrap interval, steps, and the direction with the test that decided it."""
    s = slope(values)
    out = {
        "values": [number(v) for v in values[:, 0]],
        "trend": trend([number(v) for v in values[:, 0]], o.permutations, o.seed),
        "slope": {"value": number(s[0]), "ci": interval(s[1:])},
        "steps": steps(labels, values),
    }
    found, by = direction(out, o.alpha)
    return {**out, "direction": found, "decided_by": by}


def statistic(
    labels: list[str], values: np.ndarray, o: ClaimOptions, rel: np.ndarray | None = None, votes: bool = True
) -> dict[str, Any]:
    """A statistic's moves, its attenuation-corrected moves where ``rel`` (runs x resamples
    r_full) is given, and which of them votes in the verdict (``vote``: raw, corrected or none)."""
    out = moves(labels, values, o)
    if rel is not None:
        out["corrected"] = moves(labels, corrected(values, rel), o)
    out["vote"] = ("corrected" if rel is not None else "raw") if votes else "none"
    return out


def voted(stat: dict[str, Any]) -> int | None:
    """The direction a statistic votes with: its corrected one where it votes corrected."""
    return stat["corrected"]["direction"] if stat["vote"] == "corrected" else stat["direction"]


def verdict(directions: list[int | None]) -> str:
    defined = [d for d in directions if d is not None]
    if defined and all(d == 1 for d in defined):
        return "supported"
    if defined and all(d == -1 for d in defined):
        return "contradicted"
    return "inconclusive"


def verdicts(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The claim's verdict from the voting statistics, the one the raw statistics would give, the
    basis (corrected or raw) and the tests that decided the voting statistics' directions."""
    voting = [s for s in stats.values() if s["vote"] != "none"]
    corrected_vote = any(s["vote"] == "corrected" for s in voting)
    raw = [s for s in stats.values() if s["vote"] != "none" or corrected_vote]
    return {
        "verdict": verdict([voted(s) for s in voting]),
        "verdict_raw": verdict([s["direction"] for s in raw]),
        "basis": "attenuation-corrected" if corrected_vote else "raw",
        "decided_by": sorted({str((s["corrected"] if s["vote"] == "corrected" else s)["decided_by"]) for s in voting}),
    }


# -- the claims ----------------------------------------------------------------------------


def _tests(
    space: np.ndarray,
    hypothesis: np.ndarray,
    controls: dict[str, np.ndarray | None],
    o: ClaimOptions,
    lower: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """A Mantel test and, beside it, a partial Mantel test per control (``partial``) and per lower
    label the hypothesis contains (``beyond``)."""
    test = mantel(space, hypothesis, permutations=o.permutations, seed=o.seed)
    out: dict[str, Any] = {"r": test["r"], "p": test["p"], "partial": {}}
    for group, given in (("partial", controls), ("beyond", lower or {})):
        for name, control in given.items():
            if control is not None:
                t = partial_mantel(space, hypothesis, control, permutations=o.permutations, seed=o.seed)
                out.setdefault(group, {})[name] = {k: t[k] for k in ("r", "p", "reason") if k in t}
    return out


def _partials(
    matrices: list[np.ndarray], per_run: list[np.ndarray], given: list[np.ndarray], idx: np.ndarray
) -> np.ndarray:
    return np.array([per_resample(partial_correlation(m, h, g), idx) for m, h, g in zip(matrices, per_run, given)])


def generalisation(
    base: dict[str, Any],
    name: str,
    matrices: list[np.ndarray],
    hyps: list[dict[str, np.ndarray]],
    idx: np.ndarray,
    o: ClaimOptions,
    rel: np.ndarray | None = None,
    structure: dict[str, list[list[str]]] | None = None,
) -> dict[str, Any]:
    """The claim that the space follows hypothesis ``name`` more closely along the runs (beyond
    the lower labels it contains, per ``structure``; corrected for attenuation where ``rel``)."""
    labels, structure = base["runs"], structure or {"nested": [], "equivalent": []}
    per_run = [h[name] for h in hyps]
    values = np.array([per_resample(correlation(m, h), idx) for m, h in zip(matrices, per_run)])
    stats = {"mantel_r": statistic(labels, values, o, rel)}
    if all(is_binary(h) for h in per_run):
        values = np.array([per_resample(difference(m, h), idx) for m, h in zip(matrices, per_run)])
        stats["difference"] = statistic(labels, values, o, votes=rel is None)
    lower = [a for a in lower_levels(structure, name) if all(hs.get(a) is not None for hs in hyps)]
    for a in lower:
        stats[f"mantel_r | {a}"] = statistic(labels, _partials(matrices, per_run, [hs[a] for hs in hyps], idx), o, rel)
    tests = [
        _tests(m, h, {c: hs.get(c) for c in o.controls if c != name}, o, {a: hs[a] for a in lower})
        for m, h, hs in zip(matrices, per_run, hyps)
    ]
    controls = {}
    for c in o.controls:
        if c == name or any(hs.get(c) is None for hs in hyps):
            continue
        values = _partials(matrices, per_run, [hs[c] for hs in hyps], idx)
        if np.isfinite(values[:, 0]).any():
            controls[c] = statistic(labels, values, o, rel, votes=False)
    return {
        **base,
        "claim": "generalisation",
        "hypothesis": name,
        "expected": "increase",
        "beyond": lower,
        "nested_in": [b for a, b in structure["nested"] if a == name],
        "equivalent_to": [b if a == name else a for a, b in structure["equivalent"] if name in (a, b)],
        **verdicts(stats),
        "statistics": stats,
        "tests": tests,
        "controls": controls,
    }


def sharing(
    base: dict[str, Any],
    matrices: list[np.ndarray],
    nulls: list[tuple[np.ndarray | float | None, str | None]],
    idx: np.ndarray,
    o: ClaimOptions,
    not_comparable: str | None = None,
) -> dict[str, Any]:
    """The claim that parameter sharing (mean overlap, and its excess over each run's chance
    level) grows; ``not comparable`` instead of a verdict where the runs' architectures differ."""
    labels = base["runs"]
    means = np.array([per_resample(mean_entry(m), idx) for m in matrices])
    stats = {"mean_overlap": statistic(labels, means, o)}
    if all(null is not None for null, _ in nulls):
        excess = [
            per_resample(mean_entry(m - null), idx) if isinstance(null, np.ndarray) else mean - null
            for m, mean, (null, _) in zip(matrices, means, nulls)
        ]
        stats["excess"] = statistic(labels, np.array(excess), o)
    found = verdicts(stats)
    if not_comparable:
        found = {**found, "verdict": "not comparable", "verdict_raw": "not comparable", "reason": not_comparable}
    return {
        **base,
        "claim": "sharing",
        "expected": "increase",
        "chance": [chance_record(null, kind) for null, kind in nulls],
        **found,
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
) -> tuple[list[dict[str, Any]], dict[str, list[list[str]]]]:
    """Every claim about one space, and the nesting of its hypotheses; ``matrices`` are the runs'
    (symmetrised) spaces over ``tasks``."""
    idx = resamples(len(tasks), o.bootstraps, o.seed)
    hyps = [ctx.hypotheses(tasks, r) for r in runs]
    rel, attenuation = reliabilities(runs, labels, name, tasks, idx)
    base = {
        "space": name,
        "runs": labels,
        "n_runs": len(runs),
        "n_tasks": len(tasks),
        "n_cells": len(tasks) * (len(tasks) - 1) // 2,
        "missing": {label: missing_cells(m) for label, m in zip(labels, matrices)},
        "attenuation": attenuation,
    }
    structure = nesting(hyps)
    names = [h for h in hyps[0] if h not in o.controls and all(h in hs for hs in hyps)]
    out = [generalisation(base, h, matrices, hyps, idx, o, rel, structure) for h in names]
    if name == OVERLAP:
        nulls = [null_matrix(r, name, tasks) for r in runs]
        out.append(sharing(base, matrices, nulls, idx, o, comparable(runs, labels)))
    out.append(stability(base, matrices, hyps, idx, o))
    return out, structure


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
    unknown = [c for c in o.controls if c not in known and c not in CONTROLS]
    if unknown:
        raise UserError(f"compare: unknown control hypothesis {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    out: list[dict[str, Any]] = []
    notes, structures = [], {}
    for name, ms in matrices.items():
        found, structures[name] = space_claims(name, tasks[name], ms, runs, labels, ctx, o)
        out += found
        if "reason" in out[-1]["attenuation"] and out[-1]["attenuation"]["reason"] != "no run has split halves":
            notes.append(f"space {name!r}: not corrected for attenuation ({out[-1]['attenuation']['reason']})")
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
                f"control {c!r} does not apply to these runs' tasks ({c} needs the tasks' "
                f"{'token types' if c == 'lexical-tokens' else 'vocabularies'} in results.json)"
                if c in CONTROLS
                else f"control {c!r} does not apply to these runs' tasks"
            )
    return {
        "alpha": o.alpha,
        "controls": list(o.controls),
        "n_permutations": o.permutations,
        "n_bootstraps": o.bootstraps,
        "notes": notes,
        "nesting": structures,
        "holm": adjust(out),
        "claims": out,
    }
