"""Comparing runs' task spaces (checkpoints, model sizes): what ``compare`` computes and writes.

``compare DIR1 DIR2 ...`` takes the runs in the given order (``--order-by steps|params``: by the
revision's ``step<N>`` or ``model.n_params``), and tests the paper's claims on them (see claims.py:
generalisation, sharing, stability; partial Mantel tests for controls). For every space that all runs
have (over the tasks they share), it relates each run to the previous one and to the first
(Spearman r of the off-diagonal entries, Mantel p), and summarises each run (mean accuracy,
mean ``overlap``, Mantel r with each hypothesis, within − between per label kind). It writes
``OUT/comparison.json`` and prints the tables. ``sweep`` runs ``run`` once per revision or
model into ``OUT/<label>/`` (skipping runs already done), then compares them into ``OUT``.

comparison.json: ``{"version", "options", "notes", "tasks", "claims": {"alpha", "controls", "n_permutations",
"n_bootstraps", "nesting": {space: {"nested": [[lower, higher]], "equivalent": [[a, b]]}}, "holm":
{"method", "family_size", "family"}, "claims": [{"claim", "space", "verdict", "verdict_raw", "basis",
"decided_by", "attenuation", ...}]}, "runs": [{"label", "dir", "model",
"revision", "commit", "n_tasks", "mean_accuracy", "mean_overlap", "hypotheses": {space: {hypothesis:
{"r", "p"}}}, "generalisation": {space: {labels: {"within", "between", "difference", "p"}}},
"change": null | {"mean_accuracy", "mean_overlap", "generalisation": {space: {labels: difference}}}}],
"spaces": {space: {"tasks", "symmetric", "dropped": {label: [task]}, "pairs": [{"a", "b",
"relations": ["previous" | "first"], "spearman", "p", "n_permutations", "n_entries", "n_left_out",
"upper"?, "lower"?}]}}}``; a pair's ``b`` is the later run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import AnalysisOptions, Harness, RunResults, UserError
from lingspace_harness.analysis import analyse
from lingspace_harness.results import read_results, write_atomic
from lingspace_harness.stats import is_symmetric, mantel, symmetrise

from .claims import ClaimOptions, claims, refuse_one_model, run_order
from .comparison_text import format_comparison
from .hypotheses import CONTROLS

COMPARISON_FILE = "comparison.json"
VERSION = 1
#: Builders whose per-run output the comparison reads.
BUILDERS = ("hypotheses", "generalisation")


# -- loading -------------------------------------------------------------------------------


def load_runs(dirs: list[Path], allow_same_model: bool = False) -> list[tuple[dict[str, Any], RunResults]]:
    """Each directory's results.json, in order, as read (a dict, as the claims and the space
    builders take it) and typed; one-line errors for missing or broken ones, and for two runs
    of the same model unless ``allow_same_model``."""
    if len(dirs) < 2:
        raise UserError(f"compare needs at least two run directories, got {len(dirs)}")
    runs = [read_results(d) for d in dirs]  # each refuses a missing file, or one that is not a run's
    if not allow_same_model:
        refuse_one_model(runs, dirs)
    return [(r, RunResults.from_json(r, d)) for r, d in zip(runs, dirs)]


def default_labels(dirs: list[Path], runs: list[RunResults]) -> list[str]:
    """The runs' revisions if all differ, else their directory names, else their paths."""
    candidates = [
        [str(r.config.get("revision") or "") for r in runs],
        [d.resolve().name for d in dirs],
        [str(d) for d in dirs],
    ]
    for labels in candidates:
        if all(labels) and len(set(labels)) == len(labels):
            return labels
    return [f"run{i + 1}" for i in range(len(dirs))]


# -- the comparison ------------------------------------------------------------------------


def common_spaces(runs: list[RunResults], labels: list[str], notes: list[str]) -> dict[str, dict[str, Any]]:
    """Spaces in every run, each over the tasks all runs' copies share (in the first run's order)."""
    names = [n for n in runs[0].spaces if all(n in r.spaces for r in runs)]
    out = {}
    for name in names:
        task_lists = [r.spaces[name].tasks for r in runs]
        shared = set.intersection(*map(set, task_lists))
        tasks = [t for t in task_lists[0] if t in shared]
        dropped = {label: [t for t in ts if t not in shared] for label, ts in zip(labels, task_lists)}
        dropped = {label: ts for label, ts in dropped.items() if ts}
        if len(tasks) < 3:
            notes.append(f"space {name!r} skipped: the runs share only {len(tasks)} of its tasks (3 needed)")
            continue
        if dropped:
            notes.append(
                f"space {name!r}: the runs' tasks differ; comparing the {len(tasks)} they share ("
                + "; ".join(f"{label} drops {len(ts)}" for label, ts in dropped.items())
                + ")"
            )
        out[name] = {"tasks": tasks, "dropped": dropped}
    if not out:
        listing = "; ".join(f"{label}: {', '.join(r.spaces) or 'none'}" for label, r in zip(labels, runs))
        raise UserError(f"compare: no task space is common to all runs over 3 or more tasks ({listing})")
    return out


def relate(a: np.ndarray, b: np.ndarray, permutations: int, seed: int) -> dict[str, Any]:
    """Spearman r of two spaces' off-diagonal entries with its Mantel p. Asymmetric spaces are
    compared symmetrised, and per triangle in ``upper`` and ``lower``. Pairs undefined in
    either run are left out (``n_left_out`` of the ``n_entries``)."""
    symmetric = is_symmetric(a) and is_symmetric(b)
    x, y = (a, b) if symmetric else (symmetrise(a), symmetrise(b))
    test = mantel(x, y, permutations=permutations, seed=seed)
    n = len(a)
    out = {
        "spearman": test["r"],
        "p": test["p"],
        "n_permutations": permutations,
        "n_entries": n * (n - 1) // 2,
        "n_left_out": test["n_left_out"],
        "symmetrised": not symmetric,
    }
    if "reason" in test:
        out["reason"] = test["reason"]
    if not symmetric:
        for triangle in ("upper", "lower"):
            t = mantel(a, b, permutations=permutations, seed=seed, triangle=triangle)
            out[triangle] = {"r": t["r"], "p": t["p"]}
    return out


def mean_off_diagonal(m: np.ndarray) -> float | None:
    values = m[~np.eye(len(m), dtype=bool)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def restricted(run: RunResults, spaces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's results (a dict, as space builders take it) holding only the compared spaces,
    over the compared tasks (each space's keys that are neither lists nor objects kept)."""
    whole = run.to_json()
    out = {k: v for k, v in whole.items() if k not in ("spaces", "analysis")}
    out["spaces"] = {
        name: {
            **{k: v for k, v in whole["spaces"][name].items() if not isinstance(v, (list, dict))},
            "tasks": info["tasks"],
            "matrix": run.spaces[name].submatrix(info["tasks"]).tolist(),
        }
        for name, info in spaces.items()
    }
    out["analysis"] = {}
    return out


def run_analysis(
    harness: Harness, run: RunResults, spaces: dict[str, dict[str, Any]], permutations: int, seed: int
) -> dict[str, Any]:
    """The run's saved hypotheses and generalisation where they cover exactly the compared
    tasks; otherwise computed here on the compared tasks."""
    saved = run.analysis or {}
    wanted = [b for b in BUILDERS if b in harness.space_builders]
    fits = all(sorted(run.spaces[name].tasks) == sorted(info["tasks"]) for name, info in spaces.items())
    if fits and all(all(name in (saved.get(b) or {}) for name in spaces) for b in wanted):
        return saved
    if not wanted:
        return saved if fits else {}
    options = AnalysisOptions(permutations=permutations, seed=seed, builders=wanted)
    return analyse(harness, restricted(run, spaces), options)


def summarise(
    label: str,
    directory: Path,
    run: RunResults,
    analysis: dict[str, Any],
    tasks: list[str],
    spaces: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One run's row: mean accuracy and mean off-diagonal overlap over the compared tasks, and
    each compared space's Mantel r per hypothesis and within/between per label kind."""
    accuracy = run.task_values("accuracy")
    accs = [accuracy[t] for t in tasks if accuracy[t] is not None]
    overlap = run.spaces.get("overlap")
    mean_overlap = None
    if overlap is not None:
        shared = spaces["overlap"]["tasks"] if "overlap" in spaces else [t for t in overlap.tasks if t in set(tasks)]
        mean_overlap = mean_off_diagonal(overlap.submatrix(shared)) if len(shared) > 1 else None
    tested = analysis.get("hypotheses") or {}
    contrasts = analysis.get("generalisation") or {}
    return {
        "label": label,
        "dir": str(directory),
        "model": (run.model or {}).get("name"),
        "revision": run.config.get("revision"),
        "commit": (run.model or {}).get("commit"),
        "n_tasks": len(tasks),
        "mean_accuracy": sum(accs) / len(accs) if accs else None,
        "mean_overlap": mean_overlap,
        "hypotheses": {
            name: {h: {"r": t.get("r"), "p": t.get("p")} for h, t in tested.get(name, {}).items()} for name in spaces
        },
        "generalisation": {
            name: {
                k: {f: g.get(f) for f in ("within", "between", "difference", "p")}
                for k, g in contrasts.get(name, {}).items()
            }
            for name in spaces
        },
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """How a run's summary moved from the previous run's: mean accuracy, mean overlap (parameter
    sharing), and each space's within - between difference per label kind."""
    return {
        "mean_accuracy": _minus(after["mean_accuracy"], before["mean_accuracy"]),
        "mean_overlap": _minus(after["mean_overlap"], before["mean_overlap"]),
        "generalisation": {
            space: {
                kind: _minus(
                    g.get("difference"), before["generalisation"].get(space, {}).get(kind, {}).get("difference")
                )
                for kind, g in kinds.items()
            }
            for space, kinds in after["generalisation"].items()
        },
    }


def related_pairs(matrices: list[np.ndarray], labels: list[str], permutations: int, seed: int) -> list[dict[str, Any]]:
    """Each run's space related to the previous run's and to the first run's (``relate``)."""
    pairs = []
    for j in range(1, len(matrices)):
        todo = [(j - 1, ["previous", "first"] if j == 1 else ["previous"])] + ([(0, ["first"])] if j > 1 else [])
        for i, relations in todo:
            pairs.append(
                {
                    "a": labels[i],
                    "b": labels[j],
                    "relations": relations,
                    **relate(matrices[i], matrices[j], permutations, seed),
                }
            )
    return pairs


def ordered_runs(
    dirs: list[Path], labels: list[str] | None, order_by: str, allow_same_model: bool
) -> tuple[list[dict[str, Any]], list[RunResults], list[Path], list[str]]:
    """The runs in ``order_by`` order (:func:`load_runs`), as read and typed, with their
    directories and labels (given, else :func:`default_labels`)."""
    loaded = load_runs(dirs, allow_same_model)
    if labels is None:
        labels = default_labels(dirs, [run for _, run in loaded])
    elif len(labels) != len(dirs):
        raise UserError(f"compare: {len(labels)} labels for {len(dirs)} runs")
    elif len(set(labels)) != len(labels):
        raise UserError("compare: the labels must differ")
    order = run_order([read for read, _ in loaded], order_by)
    return (
        [loaded[i][0] for i in order],
        [loaded[i][1] for i in order],
        [dirs[i] for i in order],
        [labels[i] for i in order],
    )


def compare(
    harness: Harness,
    dirs: list[Path],
    labels: list[str] | None = None,
    *,
    permutations: int = 10000,
    seed: int = 0,
    order_by: str = "given",
    options: ClaimOptions | None = None,
) -> dict[str, Any]:
    """The comparison of the runs in ``dirs`` (in ``order_by`` order), as written to comparison.json."""
    options = options or ClaimOptions(permutations=permutations, seed=seed)
    read, runs, dirs, labels = ordered_runs(dirs, labels, order_by, options.allow_same_model)
    notes: list[str] = []
    spaces = common_spaces(runs, labels, notes)
    shared_tasks = set.intersection(*(set(r.tasks) for r in runs))
    tasks = [t for t in runs[0].tasks if t in shared_tasks]
    if len(tasks) < max(len(r.tasks) for r in runs):
        notes.append(f"the runs' tasks differ; accuracy is the mean over the {len(tasks)} tasks they share")
    out_runs = [
        summarise(label, d, r, run_analysis(harness, r, spaces, permutations, seed), tasks, spaces)
        for label, d, r in zip(labels, dirs, runs)
    ]
    befores: list[dict[str, Any] | None] = [None, *out_runs]
    for before, after in zip(befores, out_runs):
        after["change"] = None if before is None else change(before, after)
    out_spaces, symmetrised = {}, {}
    for name, info in spaces.items():
        matrices = [r.spaces[name].submatrix(info["tasks"]) for r in runs]
        symmetrised[name] = [symmetrise(m) for m in matrices]
        out_spaces[name] = {
            "tasks": info["tasks"],
            "symmetric": all(is_symmetric(m) for m in matrices),
            "dropped": info["dropped"],
            "pairs": related_pairs(matrices, labels, permutations, seed),
        }
    found = claims(harness, read, labels, symmetrised, {n: i["tasks"] for n, i in spaces.items()}, options)
    return {
        "version": VERSION,
        "options": {
            "permutations": permutations,
            "seed": seed,
            "order_by": order_by,
            "bootstraps": options.bootstraps,
            "controls": options.controls,
        },
        "notes": notes + found.pop("notes"),
        "tasks": tasks,
        "claims": found,
        "runs": out_runs,
        "spaces": out_spaces,
    }


def write_comparison(
    harness: Harness, dirs: list[Path], out: Path, labels: list[str] | None, args: argparse.Namespace
) -> dict[str, Any]:
    options = ClaimOptions(
        permutations=args.permutations,
        bootstraps=args.bootstraps,
        seed=args.seed,
        controls=list(dict.fromkeys([*CONTROLS, *args.controls])),
        hypothesis_files=list(args.hypothesis_files),
        allow_same_model=args.allow_same_model,
    )
    comparison = compare(
        harness, dirs, labels, permutations=args.permutations, seed=args.seed, order_by=args.order_by, options=options
    )
    for note in comparison["notes"]:
        print(f"note: {note}", file=sys.stderr)
    write_atomic(out / COMPARISON_FILE, [json.dumps(comparison, indent=2, allow_nan=False), "\n"])
    print(format_comparison(comparison))
    print(f"\nwrote {out / COMPARISON_FILE}")
    return comparison
