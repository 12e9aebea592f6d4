"""The re-scored transfer space's ground truth, tuned on each split half first.

    lingspace-harness run --model M --tasks 'blimp_*' --data-dir ../shared/blimp --limit 200 \\
        --metric transfer --split-half --transfer-targets 40 --analysis none --output GT
        # stop it (Ctrl-C) once it prints its units: GT/run.json is written
    OMP_NUM_THREADS=1 python benchmarks/transfer_ground_truth.py GT      # resumable
    # or side by side, one process per core: ... GT --part 0/2 & ... GT --part 1/2
    python benchmarks/transfer_ground_truth.py GT --status

A ``--split-half`` run tunes each source three times: on the run's training pairs, on half A
and on half B. Item 3 of the transfer study needs only the halves (a probe built on one half is
compared with transfer tuned on the other; the two halves give the reliability), so this driver
runs the run's own units in another order: every gradient unit, then each source's two halves
(A, then B, source by source, so that an interrupted run holds both halves of the sources it
reached), then, last, the tunings on the whole training set. Any run directory works so:
a linear run's halves get their tunes and then their target columns before the whole run's.
Each unit is the one ``run`` would compute (the same ``Worker``, the same unit keys), so the
directory stays an ordinary run directory: the same ``run`` command, once every unit is stored,
computes nothing and writes results.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ORDER = {"half-a": 0, "half-b": 1, "": 2}


def ordered(units: list, tasks: list[str]) -> list:
    """Stage 0 first; then the halves' units, stage by stage, by (source, half A before half B);
    then the whole run's (its stage-2 units, which fill the halves' too, find those done)."""
    index = {t: i for i, t in enumerate(tasks)}

    def key(u) -> tuple:
        return (u.stage > 0, not u.variant, u.stage, index.get(u.name, len(tasks)), ORDER.get(u.variant, 2), u.kind)

    return sorted(units, key=key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a run directory (its run.json written by `run`)")
    parser.add_argument("--status", action="store_true", help="print the units left per kind and variant, and exit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", default="0/1", help="I/N: every N-th unit of the order, from the I-th")
    args = parser.parse_args(argv)
    try:
        part, parts = (int(x) for x in args.part.split("/"))
        if not 0 <= part < parts:
            raise ValueError
    except ValueError:
        parser.error(f"--part must be I/N with 0 <= I < N, got {args.part!r}")
    import torch

    torch.set_num_threads(args.threads)
    from lingspace_harness import load_harness
    from lingspace_harness.execution import Worker, plan_units, read_run_file
    from lingspace_harness.runner import prepare

    config = read_run_file(args.directory)
    config.output, config.shard = args.directory, None
    ctx = prepare(load_harness(), config)
    units = ordered(plan_units(ctx), ctx.task_names)[part::parts]
    counts: dict[tuple, int] = {}
    for u in units:
        counts[(u.kind, u.variant or "whole")] = counts.get((u.kind, u.variant or "whole"), 0) + 1
    print(f"{len(units)} units left: " + ", ".join(f"{n} {k} ({v})" for (k, v), n in counts.items()), flush=True)
    if args.status:
        return 0
    ctx.scores("test")  # eval1, before any unit needs it
    worker, start = Worker(ctx), time.perf_counter()
    for i, unit in enumerate(units, 1):
        worker.run(unit)
        elapsed = time.perf_counter() - start
        print(
            f"{i}/{len(units)} {unit.kind}:{unit.name} ({unit.variant or 'whole'}) "
            f"{elapsed / 60:.1f} min, {elapsed / i:.0f} s/unit",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
