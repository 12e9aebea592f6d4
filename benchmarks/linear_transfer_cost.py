"""What a source of the linear transfer space costs against a re-scored source (issue 31, item 5).

    OMP_NUM_THREADS=1 python benchmarks/linear_transfer_cost.py --data-dir ../shared/blimp --threads 1

One run on SmolLM2-135M over all 67 BLiMP paradigms at ``--limit`` pairs per split (200: 200
test pairs per target), default FTGD settings, torch on ``--threads`` threads:

- ``tune``: one source's FTGD tune (the default ``topk`` mask, early stopping), for ``--sources``
  sources (median);
- ``re-score``: eval2, scoring every target's test pairs once (what a re-scored source adds to
  its tune; the same pairs whatever the source, so it is timed once);
- ``target gradient``: one target's margin gradient over its test pairs (the linear form's stage-2
  unit without its dot products), for ``--sources`` targets (median): N targets are shared by N
  sources, so each source's share is one;
- ``dots``: one target's dot products with every source's stored update (N gathers of a mask).

A re-scored source costs tune + re-score; a linear source tune + target gradient + dots. Printed:
each median, the ratio linear / re-scored (goal <= 1/4) and the linear source over its tune (the
floor: 1.0 would be the tune alone). The masks' gradient units are computed first (not timed).
The figures, with the commit and the machine, go to ``--json`` (default
``benchmarks/results/linear_transfer_cost-<commit>.json``; see ``record.py``).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from common import default_model
from record import Record, add_json_option

GOAL = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--sources", type=int, default=3, help="sources tuned and targets differentiated (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    add_json_option(parser)
    args = parser.parse_args()
    record = Record("linear_transfer_cost", args)
    import torch

    torch.set_num_threads(args.threads)
    from lingspace_harness_plugins.ftgd.controls import source_mask
    from lingspace_harness_plugins.ftgd.linear import linear_cell
    from lingspace_harness_plugins.ftgd.tuner import MaskedTuner
    from lingspace_harness_plugins.ftgd.tuning import targets

    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare
    from lingspace_harness.tasks import task_delimiter

    out = args.out or Path(tempfile.mkdtemp(prefix="linear-cost-"))
    config = RunConfig(
        model=args.model,
        tasks=["blimp_*"],
        metrics=["transfer"],
        data_dir=Path(args.data_dir),
        limit=args.limit,
        output=out,
        options={"transfer": {"transfer_form": "linear"}},
    )
    ctx = prepare(load_harness(), config)
    tuning = ctx.harness.metrics.get("transfer").tunings(ctx)[0]
    tasks = ctx.task_names
    chosen = tasks[:: max(1, len(tasks) // args.sources)][: args.sources]
    pairs = targets(ctx, tuning)
    print(f"{len(tasks)} targets, {sum(map(len, pairs.values()))} test pairs; sources {', '.join(chosen)}", flush=True)
    masks = {s: source_mask(ctx, "topk", s, 0) for s in chosen}  # gradient units, not timed
    tunes, deltas = [], {}
    for s in chosen:
        tuner = MaskedTuner(ctx.access.model, ctx.gradient_params, masks[s])
        data = ctx.data[s]
        begin = time.perf_counter()
        tuner.tune(ctx.access, data.train, data.validation, tuning.settings, delimiter=task_delimiter(data.task))
        tunes.append(time.perf_counter() - begin)
        deltas[s] = tuner.delta()
        tuner.restore()
        print(f"tune {s}: {tunes[-1]:.1f} s", flush=True)
    begin = time.perf_counter()
    ctx.score_pairs(pairs, desc="re-score")
    rescore = time.perf_counter() - begin
    print(f"re-score of every target: {rescore:.1f} s", flush=True)
    grads, dots = [], []
    for t in chosen:
        begin = time.perf_counter()
        (grad,) = ctx.access.gradient_differentials(
            [pairs[t]], ctx.gradient_params, delimiter=task_delimiter(ctx.data[t].task)
        )
        grads.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        cells = [linear_cell(deltas[s], grad, masks[s], len(pairs[t])) for s in chosen]
        dots.append((time.perf_counter() - begin) / len(chosen) * len(tasks))  # one target's dots with N sources
        print(f"target gradient {t}: {grads[-1]:.1f} s; cells {np.round(cells, 4).tolist()}", flush=True)
    tune, grad, dot = (float(np.median(x)) for x in (tunes, grads, dots))
    rescored, linear = tune + rescore, tune + grad + dot
    print(f"\nmedians ({args.threads} thread(s)): tune {tune:.1f} s, re-score {rescore:.1f} s, ", end="")
    print(f"target gradient {grad:.1f} s, dots with {len(tasks)} sources {dot:.2f} s")
    print(f"re-scored source {rescored:.1f} s; linear source {linear:.1f} s")
    verdict = "met" if linear / rescored <= GOAL else "missed"
    print(
        f"linear / re-scored = {linear / rescored:.3f} (goal <= {GOAL}: {verdict}); linear / tune = {linear / tune:.2f}"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    record.write(
        {
            "targets": len(tasks),
            "test_pairs": sum(map(len, pairs.values())),
            "sources": chosen,
            "tune_s": tune,
            "rescore_s": rescore,
            "target_gradient_s": grad,
            "dots_s": dot,
            "rescored_source_s": rescored,
            "linear_source_s": linear,
            "linear_over_rescored": linear / rescored,
            "goal": GOAL,
            "linear_over_tune": linear / tune,
            "tune_each_s": tunes,
            "target_gradient_each_s": grads,
            "dots_each_s": dots,
            "peak_rss_mib": rss,
        }
    )


if __name__ == "__main__":
    main()
