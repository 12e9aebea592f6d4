"""FTGD's learning rate, picked per model: the premise of FTGD (targeted change, little damage)
is checked on each model before its transfer space is read.

``calibrate --lrs 3e-5,1e-4,3e-4 --output OUT -- RUN OPTIONS`` runs ``transfer`` once per
learning rate into ``OUT/lr-<LR>/`` (a resumable run each, with general-text perplexity from the
packaged ``general_text.txt`` unless the run options name another text), and picks the largest
learning rate whose median relative perplexity change over the tuned sources stays at or under
``--bound`` (default ``PERPLEXITY_BOUND``). A tuned source whose own change is above the bound is
flagged, here and in every transfer space's ``perplexity_flagged``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import Registries, UserError, main
from lingspace_harness.arguments import comma_list
from lingspace_harness.results import read_results, write_atomic

from .controls import GENERAL_TEXT

#: The largest relative increase of general-text perplexity (0.10: +10%) a tune may cause before
#: its source is flagged, and calibration's default bound on the median over sources.
PERPLEXITY_BOUND = 0.10


def relative_changes(before: float | None, changes: list[float | None]) -> list[float | None]:
    """Each source's perplexity change over the untuned model's perplexity (None: untuned)."""
    if not before:
        return [None for _ in changes]
    return [None if c is None else c / before for c in changes]


def flagged(tasks: list[str], relative: list[float | None], bound: float = PERPLEXITY_BOUND) -> list[str]:
    """The sources whose tune raised perplexity by more than ``bound`` (relative)."""
    return [t for t, r in zip(tasks, relative) if r is not None and r > bound]


def summarise_lr(results: dict[str, Any], bound: float) -> dict[str, Any]:
    """One learning rate's row: tuned sources, the median and largest relative perplexity
    change, the median own-task margin gain (the diagonal), and the flagged sources."""
    space = results["spaces"]["transfer"]
    tasks, matrix = space["tasks"], space["matrix"]
    relative = relative_changes(space.get("perplexity_before"), space.get("perplexity_change") or [])
    tuned = [r for r in relative if r is not None]
    gains = [matrix[i][i] for i in range(len(tasks)) if matrix[i][i] is not None and np.isfinite(matrix[i][i])]
    return {
        "perplexity_on": space.get("perplexity_on"),
        "perplexity_before": space.get("perplexity_before"),
        "tuned": len(tuned),
        "sources": len(tasks),
        "median_relative_perplexity_change": float(np.median(tuned)) if tuned else None,
        "max_relative_perplexity_change": float(np.max(tuned)) if tuned else None,
        "median_target_gain": float(np.median(gains)) if gains else None,
        "flagged": flagged(tasks, relative, bound),
    }


def choose(rows: dict[float, dict[str, Any]], bound: float) -> float | None:
    """The largest learning rate whose median relative perplexity change is at most ``bound``."""
    ok = [
        lr
        for lr, row in rows.items()
        if row["median_relative_perplexity_change"] is not None and row["median_relative_perplexity_change"] <= bound
    ]
    return max(ok) if ok else None


def run_argv(run_args: list[str], lr: float, out: Path) -> list[str]:
    """The ``run`` of one learning rate: transfer alone, general text unless the options name one."""
    flags = {a.split("=", 1)[0] for a in run_args}
    for flag in ("--output", "--metric", "--ftgd-lr"):
        if flag in flags:
            raise UserError(f"calibrate: leave {flag} out of the run options; calibrate sets it")
    extra = [] if "--perplexity-text" in flags else ["--perplexity-text", str(GENERAL_TEXT)]
    return ["run", *run_args, "--metric", "transfer", "--ftgd-lr", repr(lr), *extra, "--output", str(out)]


def learning_rates(values: list[str]) -> list[float]:
    try:
        lrs = sorted({float(v) for v in values})
    except ValueError as exc:
        raise UserError(f"calibrate: --lrs must be numbers, got {','.join(values)}") from exc
    if not lrs or lrs[0] <= 0:
        raise UserError("calibrate: --lrs must be positive")
    return lrs


def table(rows: dict[float, dict[str, Any]], chosen: float | None, bound: float) -> str:
    lines = ["lr\ttuned\tmedian Δppl\tmax Δppl\tmedian gain\tflagged (Δppl > bound)"]
    for lr, r in rows.items():
        cells = [r["median_relative_perplexity_change"], r["max_relative_perplexity_change"]]
        shown = ["undefined" if c is None else f"{c:+.1%}" for c in cells]
        gain = "undefined" if r["median_target_gain"] is None else f"{r['median_target_gain']:+.3f}"
        lines.append(f"{lr:g}\t{r['tuned']}/{r['sources']}\t{shown[0]}\t{shown[1]}\t{gain}\t{len(r['flagged'])}")
    verdict = (
        f"chosen: --ftgd-lr {chosen:g} (the largest whose median perplexity change is at most {bound:+.0%})"
        if chosen is not None
        else f"no learning rate of the grid keeps the median perplexity change at or under {bound:+.0%}: try smaller"
    )
    return "\n".join([*lines, verdict])


class CalibrateCommand:
    name = "calibrate"
    help = "pick FTGD's learning rate for a model: transfer at each --lrs, general-text perplexity against --bound"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--lrs", type=comma_list, default=["3e-5", "1e-4", "3e-4"], help="default 3e-5,1e-4,3e-4")
        parser.add_argument(
            "--bound",
            type=float,
            default=PERPLEXITY_BOUND,
            help=f"largest median relative perplexity change (default {PERPLEXITY_BOUND})",
        )
        parser.add_argument("--output", type=Path, required=True, metavar="OUT", help="OUT/lr-<LR>/ per learning rate")
        parser.add_argument("run_args", nargs=argparse.REMAINDER, metavar="-- RUN OPTIONS")

    def run(self, args: argparse.Namespace, harness: Registries) -> int:
        if not args.bound > 0:
            raise UserError(f"calibrate: --bound must be positive, got {args.bound}")
        lrs = learning_rates(args.lrs)
        run_args = list(args.run_args)[1:] if list(args.run_args)[:1] == ["--"] else list(args.run_args)
        argvs = {lr: run_argv(run_args, lr, args.output / f"lr-{lr:g}") for lr in lrs}
        rows = {}
        for lr, argv in argvs.items():
            print(f"lr {lr:g}: running into {args.output / f'lr-{lr:g}'}")
            code = main(argv)
            if code:
                return code
            rows[lr] = summarise_lr(read_results(args.output / f"lr-{lr:g}"), args.bound)
        chosen = choose(rows, args.bound)
        record = {"bound": args.bound, "chosen_lr": chosen, "learning_rates": {f"{lr:g}": r for lr, r in rows.items()}}
        write_atomic(args.output / "calibration.json", [json.dumps(record, indent=2), "\n"])
        print(table(rows, chosen, args.bound))
        return 0
