"""Which probe predicts the re-scored transfer space at 67 paradigms, without shared noise?

    python benchmarks/transfer_study.py --truth GT --probes RUN [RUN ...] [--bootstrap 1000] [--linear-from-truth]
        [--truth-space TEMPLATE OUT]   # then: lingspace-harness analyse OUT

``GT`` is the re-scored transfer run (``--split-half``; see ``transfer_ground_truth.py``: it may be
unfinished, then only the sources with both halves stored enter); each ``RUN`` is a finished
``--split-half`` run over the same tasks and pairs whose spaces are the probes (``transfer`` or
``lookahead`` with ``--*-form linear``, ``signmask``, ``gradsim``, a re-scored ``lookahead``).

A probe and the transfer it is compared with share no training pair, batch or mask: the probe
built on half A is compared with transfer tuned on half B and the other way round, over the
ordered off-diagonal cells (source, target), Spearman r, the two directions averaged. The
disattenuated r divides it by √(probe's split-half r × transfer's split-half r) over the same
cells (each half is compared with a half, so no Spearman-Brown step). Its 95% interval resamples
tasks (sources and targets together, with replacement) and recomputes both reliabilities in each
replicate. "centred" repeats all of it after double-centring each matrix (row and column means
removed, over the cells compared). "same half" (labelled so) compares a probe with transfer of the
same half: they share pairs, batches and mask. The linear transfer's calibration regresses the
re-scored cell on the linear one of the same tune (same half), diagonal and off-diagonal apart:
slope and R². ``--json PATH`` also writes the figures there, with the command line, commit and
machine (``record.py``'s format: the figures under ``figures``).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from record import Record
from scipy.stats import rankdata

HALVES = ("half-a", "half-b")


def truth_halves(directory: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The re-scored transfer space of each half, NaN rows where a source is not stored yet (or untuned)."""
    from lingspace_harness_plugins.ftgd.probing import stored_rows

    from lingspace_harness import load_harness
    from lingspace_harness.execution import read_run_file
    from lingspace_harness.runner import prepare

    config = read_run_file(directory)
    config.output, config.shard = directory, None
    ctx = prepare(load_harness(), config)
    transfer = ctx.harness.metrics.get("transfer")
    tasks, out = ctx.task_names, {}
    for half in HALVES:
        variant = ctx.for_variant(half)
        rows = stored_rows(variant, transfer.tunings(variant)[0])
        out[half] = np.array(
            [
                [np.nan if s not in rows or rows[s]["margin"][t] is None else rows[s]["margin"][t] for t in tasks]
                for s in tasks
            ]
        )
    return ctx, out


def linear_from_truth(ctx: Any) -> dict[str, np.ndarray]:
    """The linear transfer space of each half from the updates the re-scored run stored (its own
    tunes: the linear form's stage 2 without its units), NaN rows where a source has none yet."""
    from lingspace_harness_plugins.ftgd.linear import linear_cell, stored_mask
    from lingspace_harness_plugins.ftgd.tuning import targets, update_store

    from lingspace_harness.tasks import task_delimiter

    transfer = ctx.harness.metrics.get("transfer")
    tasks = ctx.task_names
    halves = {h: ctx.for_variant(h) for h in HALVES}
    tunings = {h: transfer.tunings(v)[0] for h, v in halves.items()}
    stores = {h: update_store(v, tunings[h]) for h, v in halves.items()}
    out = {h: np.full((len(tasks), len(tasks)), np.nan) for h in HALVES}
    updates = {
        (h, i): (stores[h].load_array(s), stored_mask(stores[h], halves[h], tunings[h], s))
        for h in HALVES
        for i, s in enumerate(tasks)
        if stores[h].has(s, ".npy")
    }
    for j, t in enumerate(tasks):
        pairs = targets(ctx, tunings["half-a"])[t]
        (grad,) = ctx.access.gradient_differentials(
            [pairs], ctx.gradient_params, delimiter=task_delimiter(ctx.data[t].task)
        )
        for (h, i), (delta, mask) in updates.items():
            out[h][i, j] = linear_cell(delta, grad, mask, len(pairs))
        print(f"linear cells: target {j + 1}/{len(tasks)}", flush=True)
    return out


def probe_halves(path: Path, tasks: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Each space of a finished split-half run: {"half-a", "half-b", "whole"} matrices, in ``tasks`` order."""
    results = json.loads((path / "results.json").read_text())
    out = {}
    for name, space in results["spaces"].items():
        if "split_half" not in space:
            continue
        order = np.ix_(*[[space["tasks"].index(t) for t in tasks]] * 2)
        form = space.get("form")
        label = f"{name} ({form})" if form and name in ("transfer", "lookahead") else name  # signmask's is "linear" too
        out[label] = {
            "half-a": reorder(space["split_half"]["a"], order),
            "half-b": reorder(space["split_half"]["b"], order),
        }
        out[label]["whole"] = reorder(space["matrix"], order)
    return out


def write_truth_space(
    template: Path, out: Path, tasks: list[str], truth: dict, sources: np.ndarray, probes: list
) -> None:
    """``out/results.json``: ``template``'s run (a finished run over the same tasks and pairs, for
    the tasks' labels and vocabularies) with one space, ``transfer``: the re-scored space as the
    mean of its two halves' (each tuned on half the training pairs), its halves as the split
    halves, and the rows of sources without both halves undefined. ``lingspace-harness analyse
    out`` then tests it as it tests any run's space. Each probe's space is written beside it with the
    same rows undefined, so that every space is tested on the same task pairs."""
    results = json.loads((template / "results.json").read_text())
    if sorted(results["tasks"]) != sorted(tasks):
        raise SystemExit(f"{template}: its tasks are not the truth's")
    keep = np.isin(np.arange(len(tasks)), sources)[:, None]
    halves = {h: np.where(keep, truth[h], np.nan) for h in HALVES}

    def cells(m: np.ndarray) -> list:
        return [[None if not np.isfinite(x) else float(x) for x in row] for row in m]

    results["spaces"] = {
        "transfer": {
            "tasks": tasks,
            "matrix": cells((halves["half-a"] + halves["half-b"]) / 2),
            "form": "rescored",
            "built_as": "mean of the two split halves' re-scored spaces (each tuned on half the training pairs)",
            "split_half": {"a": cells(halves["half-a"]), "b": cells(halves["half-b"])},
            "undefined": {"count": int((~keep).sum()), "reason": "source not yet tuned on both halves"},
        }
    }
    for name, probe in probes:
        if probe.get("whole") is None:
            continue
        masked = {h: np.where(keep, probe[h], np.nan) for h in (*HALVES, "whole")}
        results["spaces"][name.replace(" (", "-").rstrip(")")] = {
            "tasks": tasks,
            "matrix": cells(masked["whole"]),
            "split_half": {"a": cells(masked["half-a"]), "b": cells(masked["half-b"])},
            "undefined": {"count": int((~keep).sum()), "reason": "rows of the sources the truth lacks"},
        }
    for key in ("analysis", "execution"):
        results.pop(key, None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {out / 'results.json'} ({len(sources)} sources); test it: lingspace-harness analyse {out}")


def fmt(x: float) -> str:
    return f"{x:.2f}" if np.isfinite(x) else "undefined"


def reorder(matrix: list, order: tuple) -> np.ndarray:
    return np.array(matrix, dtype=float)[order]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x[ok]), rankdata(y[ok]))[0, 1])


def centred(m: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``m`` less its row and column means (over ``cells``), plus the grand mean."""
    x = np.where(cells, m, np.nan)
    return x - np.nanmean(x, axis=1, keepdims=True) - np.nanmean(x, axis=0, keepdims=True) + np.nanmean(x)


def statistics(probe: dict, truth: dict, rows: np.ndarray, cols: np.ndarray, centre: bool) -> dict[str, float]:
    """Cross-half r, reliabilities and disattenuated r on the cells (rows[k], cols[k])."""
    cells = np.zeros(truth["half-a"].shape, dtype=bool)
    cells[rows, cols] = True
    get = (lambda m: centred(m, cells)[rows, cols]) if centre else (lambda m: m[rows, cols])
    pa, pb, ta, tb = (
        get(d[h]) for d, h in ((probe, "half-a"), (probe, "half-b"), (truth, "half-a"), (truth, "half-b"))
    )
    cross = np.nanmean([spearman(pa, tb), spearman(pb, ta)])
    same = np.nanmean([spearman(pa, ta), spearman(pb, tb)])
    rel_p, rel_t = spearman(pa, pb), spearman(ta, tb)
    ok = rel_p > 0 and rel_t > 0
    return {
        "cross": cross,
        "same": same,
        "rel_probe": rel_p,
        "rel_truth": rel_t,
        "disattenuated": cross / np.sqrt(rel_p * rel_t) if ok else float("nan"),
    }


def with_interval(probe: dict, truth: dict, sources: np.ndarray, n: int, centre: bool, reps: int, seed: int) -> dict:
    """``statistics`` on every ordered off-diagonal cell of the sources, and its task-bootstrap interval."""
    rows, cols = np.meshgrid(sources, np.arange(n), indexing="ij")
    keep = rows != cols
    point = statistics(probe, truth, rows[keep], cols[keep], centre)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        pick = rng.choice(n, n, replace=True)
        src = pick[np.isin(pick, sources)]
        r, c = np.meshgrid(src, pick, indexing="ij")
        ok = r != c
        draws.append(statistics(probe, truth, r[ok], c[ok], centre)["disattenuated"])
    draws_ = np.array(draws)
    finite = draws_[np.isfinite(draws_)]
    point["ci"] = [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if finite.size else None
    point["undefined_replicates"] = int((~np.isfinite(draws_)).sum())
    return point


def calibration(linear: dict, truth: dict, sources: np.ndarray) -> dict[str, dict[str, float]]:
    """Re-scored on linear, same tune (each half), pooled: slope through OLS and R², diagonal and off-diagonal."""
    out = {}
    for part in ("diagonal", "off-diagonal"):
        xs, ys = [], []
        for h in HALVES:
            for s in sources:
                cols = [s] if part == "diagonal" else [t for t in range(len(truth[h])) if t != s]
                xs += list(linear[h][s, cols])
                ys += list(truth[h][s, cols])
        x, y = np.array(xs), np.array(ys)
        ok = np.isfinite(x) & np.isfinite(y)
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        r2 = float(np.corrcoef(x[ok], y[ok])[0, 1] ** 2)
        out[part] = {"slope": float(slope), "intercept": float(intercept), "r2": r2, "cells": int(ok.sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--probes", type=Path, nargs="*", default=[])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--truth-space",
        nargs=2,
        type=Path,
        metavar=("TEMPLATE", "OUT"),
        help="also write OUT/results.json: the truth's halves' mean as a run's space (TEMPLATE: a run, same tasks)",
    )
    parser.add_argument(
        "--linear-from-truth",
        action="store_true",
        help="add the linear transfer computed from the truth's own stored updates (its sources so far)",
    )
    args = parser.parse_args()
    record = Record("transfer_study", args)
    warnings.simplefilter("ignore", RuntimeWarning)  # a replicate with no defined cell: undefined, counted
    ctx, truth = truth_halves(args.truth)
    tasks = ctx.task_names
    probes = [(name, probe) for run in args.probes for name, probe in probe_halves(run, tasks).items()]
    if args.linear_from_truth:
        probes.append(("transfer (linear, the truth's tunes)", linear_from_truth(ctx)))
    both = np.ones(len(tasks), dtype=bool)
    for matrices in [truth] + [p for _, p in probes if p.get("whole") is None]:  # and the linear rows
        both &= np.all(np.isfinite(matrices["half-a"]), axis=1) & np.all(np.isfinite(matrices["half-b"]), axis=1)
    sources = np.flatnonzero(both)
    print(f"{len(tasks)} targets; {len(sources)} sources with both halves re-scored and tuned\n")
    if args.truth_space:
        write_truth_space(*args.truth_space, tasks, truth, sources, probes)
    figures: dict = {"sources": [tasks[i] for i in sources], "probes": {}}
    print(
        "| probe | same half r (shared noise) | cross-half r | probe rel. | transfer rel. | disattenuated r [95% CI] "
        "| centred: disattenuated r [95% CI] |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, probe in probes:
        raw = with_interval(probe, truth, sources, len(tasks), False, args.bootstrap, args.seed)
        cen = with_interval(probe, truth, sources, len(tasks), True, args.bootstrap, args.seed)
        figures["probes"][name] = {"raw": raw, "centred": cen}
        if name.startswith("transfer (linear"):
            figures["probes"][name]["calibration"] = calibration(probe, truth, sources)
        ci = lambda s: "undefined" if s["ci"] is None else f"[{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]"  # noqa: E731
        print(
            f"| {name} | {fmt(raw['same'])} | {fmt(raw['cross'])} | {fmt(raw['rel_probe'])} "
            f"| {fmt(raw['rel_truth'])} "
            f"| {fmt(raw['disattenuated'])} {ci(raw)} | {fmt(cen['disattenuated'])} {ci(cen)} |"
        )
    for name, entry in figures["probes"].items():
        for part, c in entry.get("calibration", {}).items():
            print(
                f"\ncalibration of {name}, {part}: re-scored = {c['slope']:.3f} × linear + {c['intercept']:.4f}, "
                f"R² {c['r2']:.3f} ({c['cells']} cells)"
            )
    if args.json:
        record.write(figures)


if __name__ == "__main__":
    main()
