"""The signed-mask probe P: its sketch against the exact P, and its cost against gradsim's.

    OMP_NUM_THREADS=1 python benchmarks/signmask_study.py --data-dir ../shared/blimp --threads 1

On SmolLM2-135M, the 12 one-per-phenomenon BLiMP paradigms at ``--limit`` pairs per paradigm:
each task's training differential D_t is computed once (timed: the gradient unit's model work)
and reduced in memory by ``projected`` (what a default gradsim run stores) and ``signed-sketch``
(what a default signmask run stores), each timed. Then:

- agreement: the exact P[s, t] = sum over M_s of sign(D_s) D_t / n_t (M_s the top-k mask, as
  ``--signmask-strategy full`` computes it) against the sketched P that ``signed-sketch`` gives,
  Pearson and Spearman r over the ordered off-diagonal cells, the diagonal apart, and the largest
  difference as a fraction of the largest |cell|; as the README reports for gradsim's projection;
- cost: a signmask run's gradient unit (differential + signed-sketch) over a gradsim run's
  (differential + projected), medians over tasks (goal <= 1.1).

The figures, with the commit and the machine, go to ``--json`` (default
``benchmarks/results/signmask_study-<commit>.json``; see ``record.py``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import default_model, one_per_phenomenon
from record import Record, add_json_option
from scipy.stats import spearmanr

GOAL = 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    add_json_option(parser)
    args = parser.parse_args()
    record = Record("signmask_study", args)
    import tempfile
    from pathlib import Path

    import torch

    torch.set_num_threads(args.threads)
    from lingspace_harness_plugins.signed_mask import SignedSketch, SignedSketchOptions, mask_size
    from lingspace_harness_plugins.strategies import Projected, ProjectedOptions

    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare
    from lingspace_harness.selection import largest_magnitudes
    from lingspace_harness.tasks import task_delimiter

    tasks = one_per_phenomenon(Path(args.data_dir))
    config = RunConfig(
        model=args.model,
        tasks=tasks,
        metrics=["gradsim"],
        data_dir=Path(args.data_dir),
        limit=args.limit,
        output=Path(tempfile.mkdtemp()),
    )
    ctx = prepare(load_harness(), config)
    layout, params = ctx.gradient_layout, ctx.gradient_params
    projected, sketch = Projected(), SignedSketch()
    popts, sopts = ProjectedOptions(), SignedSketchOptions()
    times: dict[str, list[float]] = {"gradient": [], "projected": [], "signed-sketch": []}
    grads, sketches, n = [], [], []
    for t in tasks:
        data = ctx.data[t]
        start = time.perf_counter()
        (grad,) = ctx.access.gradient_differentials([data.train], params, delimiter=task_delimiter(data.task))
        times["gradient"].append(time.perf_counter() - start)
        start = time.perf_counter()
        projected.reduce(grad, layout, popts)
        times["projected"].append(time.perf_counter() - start)
        start = time.perf_counter()
        sketches.append(sketch.reduce(grad, layout, sopts).astype(np.float64))
        times["signed-sketch"].append(time.perf_counter() - start)
        grads.append(np.asarray(grad, dtype=np.float32).copy())
        n.append(len(data.train))
        print(f"{t}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    k = mask_size(sopts.signed_topk, layout.size)
    masks = [largest_magnitudes(g, k) for g in grads]
    exact = (
        np.array(
            [
                [np.sign(grads[s][masks[s]]) @ grads[t][masks[s]].astype(np.float64) for t in range(len(tasks))]
                for s in range(len(tasks))
            ]
        )
        / np.array(n)[None, :]
    )
    half = sketches[0].size // 2
    sk = np.array([[sketches[s][half:] @ sketches[t][:half] for t in range(len(tasks))] for s in range(len(tasks))])
    sk /= np.array(n)[None, :]
    off = ~np.eye(len(tasks), dtype=bool)
    pearson = float(np.corrcoef(exact[off], sk[off])[0, 1])
    rank = float(spearmanr(exact[off], sk[off]).statistic)
    diag = float(np.corrcoef(np.diag(exact), np.diag(sk))[0, 1])
    worst = float(np.max(np.abs(exact - sk)) / np.max(np.abs(exact)))
    print(
        f"\nsketch vs exact P ({len(tasks)} tasks, {off.sum()} off-diagonal cells): Pearson r {pearson:.4f}, "
        f"Spearman r {rank:.4f}; diagonal Pearson r {diag:.4f}; largest difference {worst:.1%} of the largest |cell|"
    )
    med = {key: float(np.median(v)) for key, v in times.items()}
    ratio = (med["gradient"] + med["signed-sketch"]) / (med["gradient"] + med["projected"])
    print(
        f"medians ({args.threads} thread(s)): gradient {med['gradient']:.1f} s, projected {med['projected']:.2f} s, "
        f"signed-sketch {med['signed-sketch']:.2f} s"
    )
    print(f"signmask unit / gradsim unit = {ratio:.3f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'missed'})")
    record.write(
        {
            "tasks": tasks,
            "pearson_r": pearson,
            "spearman_r": rank,
            "diagonal_pearson_r": diag,
            "largest_difference_rel": worst,
            "median_s": med,
            "ratio": ratio,
            "goal": GOAL,
            "each_s": times,
        }
    )


if __name__ == "__main__":
    main()
