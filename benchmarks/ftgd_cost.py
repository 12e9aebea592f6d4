"""What transfer and lookahead cost on SmolLM2-135M (or --model), against a gradient differential.

    OMP_NUM_THREADS=2 python benchmarks/ftgd_cost.py source    --data-dir ../shared/blimp
    OMP_NUM_THREADS=2 python benchmarks/ftgd_cost.py lookahead --data-dir ../shared/blimp --out /tmp/la

``source``: one FTGD source unit of ``transfer`` exactly as a run does it (``tuned_row``: tune with
the default settings and early stopping, re-score every target task, store the row), in a run over
the 12 one-per-phenomenon paradigms at ``--pairs`` per split, against one gradient differential of
the source's training pairs (``--task``); alternating, medians of ``--repeats``. The ratio is the
per-source cost in gradient differentials (goal <= 6x). ``lookahead``: the 67-task lookahead space
through the real CLI (``--limit 20 --metric lookahead --lookahead-targets 10``, the README's
measurement; goal <= 20 min), its wall time and peak RSS.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from spaces import clock, default_model, one_per_phenomenon, report_medians, run_cli


def source(args: argparse.Namespace) -> None:
    import torch

    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare
    from lingspace_harness_plugins.ftgd.probing import tuned_row

    torch.set_num_threads(args.threads)
    tasks = one_per_phenomenon(args.data_dir)
    tasks = tasks if args.task in tasks else [args.task, *tasks[:-1]]
    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(model=args.model, tasks=tasks, data_dir=Path(args.data_dir), limit=args.pairs,
                           metrics=["transfer"], output=Path(out), analysis=[])
        ctx = prepare(load_harness(), config)
        ctx.scores("test")  # eval1, once per run
        transfer = ctx.harness.metrics.get("transfer")
        tuning = transfer.tunings(ctx)[0]
        ctx.gradient(ctx.provider("mask").name, args.task)  # the source's mask unit, once per source
        train = ctx.data[args.task].train
        times: dict[str, list[np.ndarray]] = {"gradient differential": [], "FTGD source unit": []}
        for _ in range(args.repeats):
            start = clock()
            ctx.access.gradient_differential(train, ctx.gradient_params)
            times["gradient differential"].append(clock() - start)
            start = clock()
            row = tuned_row(ctx, tuning, args.task)
            times["FTGD source unit"].append(clock() - start)
    print(f"{args.task}: {len(train)} training pairs, {row['steps']} steps (best {row['best_step']}), "
          f"re-scoring {len(tasks)} tasks x {args.pairs} test pairs, {args.threads} threads; medians of "
          f"{args.repeats}, ratios to one gradient differential of the training pairs (goal <= 6x)")
    report_medians(times, "gradient differential")


def lookahead(args: argparse.Namespace) -> None:
    wall, rss = run_cli(["--model", args.model, "--tasks", "blimp_*", "--data-dir", str(args.data_dir),
                         "--limit", "20", "--metric", "lookahead", "--lookahead-targets", "10",
                         "--output", str(args.out)])
    print(f"67-task lookahead space (--limit 20 --lookahead-targets 10): wall {wall / 60:.1f} min "
          f"(goal <= 20 min), peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["source", "lookahead"])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LINGSPACE_BLIMP_DIR", "../shared/blimp")))
    parser.add_argument("--pairs", type=int, default=100, help="--limit: pairs per split (default %(default)s)")
    parser.add_argument("--task", default="blimp_anaphor_number_agreement", help="the source task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    os.environ.setdefault("LINGSPACE_NO_PROGRESS", "1")
    {"source": source, "lookahead": lookahead}[args.what](args)


if __name__ == "__main__":
    main()
