"""The ``agreement`` space builder: how far each space of a run says what each other one says.

Probes are the run's spaces, plus a space's ``centred`` form where it carries one (gradsim's
task-mean-centred cosine becomes the probe ``gradsim.centred``). Every pair of probes is related
as ``compare`` relates one space across runs (:func:`compare.relate`): Spearman r of the
off-diagonal cells defined in both, with a Mantel permutation p; asymmetric spaces (transfer,
lookahead) are compared symmetrised, (A + A') / 2, and per triangle beside it. Undefined cells
are left out and counted, never read as 0.

Where ``transfer`` is present, each probe's r with it is also read against transfer's own
split-half ceiling: ``ratio = r / r_full``, r_full the Spearman-Brown corrected split-half r of
transfer's symmetrised halves (symmetrised as the r it divides is); ``ci`` is the 95% percentile
task-bootstrap interval of that r (tasks drawn with replacement, both spaces over the same draw,
a task never paired with itself, as ``compare``'s claims resample; ``ratio_ci`` divides it by
the observed ceiling). What each space cost is
measured, not computed, so it is not here but in results.json's ``execution.costs`` (the
report shows the two side by side): the analysis stays the same whichever way the run ran.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, DataError
from lingspace_harness.stats import is_symmetric, split_half_reliability, symmetrise

from .claim_statistics import correlation, interval, per_resample, resamples
from .comparison import relate

#: The ground truth the cheaper probes are read against.
REFERENCE = "transfer"
#: A space's extra that holds another form of it, related as a probe of its own.
FORMS = ("centred",)


def _square(value: Any, n: int) -> np.ndarray | None:
    try:
        m = np.array(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return m if m.shape == (n, n) else None


def probes(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> {tasks, matrix, space, form} for each space and each extra form of one (a form
    that is not an N x N matrix over the space's N tasks is not a probe; a space's own matrix
    must be one)."""
    out = {}
    for name, space in (results.get("spaces") or {}).items():
        tasks = list(space.get("tasks") or [])
        if _square(space.get("matrix"), len(tasks)) is None:
            raise DataError(
                f"results.json: space {name!r} needs a numeric {len(tasks)}x{len(tasks)} matrix "
                f"over its {len(tasks)} tasks"
            )
        for form in ("matrix", *FORMS):
            matrix = _square(space.get(form), len(tasks)) if form in space else None
            if matrix is not None:
                out[name if form == "matrix" else f"{name}.{form}"] = {
                    "tasks": tasks,
                    "matrix": matrix,
                    "space": name,
                    "form": form,
                }
    return out


def _restrict(probe: dict[str, Any], tasks: list[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(probe["tasks"])}
    idx = [index[t] for t in tasks]
    return probe["matrix"][np.ix_(idx, idx)]


def pair_entry(a: str, b: str, x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> dict[str, Any]:
    """One pair of probes: Spearman r over the off-diagonal cells defined in both (``n_pairs``;
    ``n_undefined`` left out), Mantel p, and whether the spaces were symmetrised. The Mantel null
    permutes the second space; where only one of the two is symmetric, that one is permuted (as
    the hypotheses builder permutes its symmetric hypotheses), so an asymmetric space's triangle
    stays that triangle in the null, and the test takes the fast path for a complete one."""
    if is_symmetric(x) and not is_symmetric(y):
        x, y = y, x
    test = relate(x, y, permutations, seed)
    r, entries, undefined = test.pop("spearman"), test.pop("n_entries"), test.pop("n_left_out")
    return {"a": a, "b": b, "r": r, **test, "n_pairs": entries - undefined, "n_undefined": undefined}


def ceiling(space: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Split-half reliability of a space's symmetrised halves over ``tasks`` (``r_full``: the
    Spearman-Brown ceiling); a reason where the space has no halves."""
    halves = space.get("split_half")
    if not halves:
        return {"r": None, "r_full": None, "reason": f"{REFERENCE} has no split halves (run with --split-half)"}
    index = {t: i for i, t in enumerate(space["tasks"])}
    idx = [index[t] for t in tasks]
    a, b = (symmetrise(np.array(halves[h], dtype=float)[np.ix_(idx, idx)]) for h in ("a", "b"))
    return {**split_half_reliability(a, b), "symmetrised": True}


def bootstrap_ci(x: np.ndarray, y: np.ndarray, bootstraps: int, seed: int) -> list[float] | None:
    """95% task-bootstrap interval of the Spearman r of two spaces' off-diagonal cells (each
    symmetrised unless both are symmetric); None without bootstraps or defined replicates."""
    if bootstraps < 1:
        return None
    if not (is_symmetric(x) and is_symmetric(y)):
        x, y = symmetrise(x), symmetrise(y)
    return interval(per_resample(correlation(x, y), resamples(len(x), bootstraps, seed))[1:])


def against_reference(
    found: dict[str, dict[str, Any]],
    pairs: list[dict[str, Any]],
    limit: dict[str, Any],
    cis: dict[str, list[float] | None],
) -> dict[str, Any]:
    """Each probe's r with the reference (``ci``: ``cis[probe]``), and that r over the
    reference's ceiling ``r_full``."""
    out = {}
    for name in found:
        if name == REFERENCE:
            continue
        pair = next(p for p in pairs if {p["a"], p["b"]} == {name, REFERENCE})
        entry = {"r": pair["r"], "ci": cis.get(name), "p": pair["p"], "ratio": None, "ratio_ci": None}
        if pair["r"] is None:
            entry["reason"] = pair.get("reason", "no r")
        elif limit.get("r_full") is None:
            entry["reason"] = f"no ceiling: {limit.get('reason')}"
        else:
            entry["ratio"] = pair["r"] / limit["r_full"]  # r_full is positive where defined
            if entry["ci"] is not None:
                entry["ratio_ci"] = [v / limit["r_full"] for v in entry["ci"]]
        out[name] = entry
    return {"reference": REFERENCE, "ceiling": limit, "probes": out}


class Agreement:
    name = "agreement"
    description = (
        "Spearman r and Mantel p between every two spaces of the run (asymmetric ones symmetrised); "
        "with transfer, each probe's r over transfer's split-half ceiling"
    )

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        found = probes(results)
        names = list(found)
        tasks = [
            t for t in (found[names[0]]["tasks"] if names else []) if all(t in set(p["tasks"]) for p in found.values())
        ]
        out: dict[str, Any] = {
            "probes": {n: {"space": p["space"], "form": p["form"]} for n, p in found.items()},
            "n_tasks": len(tasks),
            "pairs": [],
        }
        if len(names) < 2:
            return {**out, "reason": f"{len(names)} space(s) in this run; agreement needs 2"}
        matrices = {n: _restrict(p, tasks) for n, p in found.items()}
        o = ctx.options
        out["pairs"] = [
            pair_entry(a, b, matrices[a], matrices[b], o.permutations, o.seed)
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        ]
        if REFERENCE in found:
            limit = ceiling(results["spaces"][REFERENCE], tasks)
            cis = {
                n: bootstrap_ci(matrices[n], matrices[REFERENCE], o.bootstraps, o.seed) for n in names if n != REFERENCE
            }
            out[REFERENCE] = against_reference(found, out["pairs"], limit, cis)
        return out
