"""Task-space benchmarks on SmolLM2-135M (or --model): cost of gradients, gradsim, transfer.

    OMP_NUM_THREADS=2 python benchmarks/spaces.py ratio    --data-dir ../shared/blimp
    OMP_NUM_THREADS=2 python benchmarks/spaces.py gradsim  --data-dir ../shared/blimp --out /tmp/gs
    OMP_NUM_THREADS=2 python benchmarks/spaces.py transfer --data-dir ../shared/blimp --out /tmp/tr
    OMP_NUM_THREADS=2 python benchmarks/spaces.py executors --data-dir ../shared/blimp --out /tmp/ex
    OMP_NUM_THREADS=2 python benchmarks/spaces.py ftgd-step --data-dir ../shared/blimp
    OMP_NUM_THREADS=2 python benchmarks/spaces.py ftgd-tune --data-dir ../shared/blimp
    OMP_NUM_THREADS=2 python benchmarks/spaces.py ftgd-source --data-dir ../shared/blimp
    OMP_NUM_THREADS=2 python benchmarks/spaces.py lookahead --data-dir ../shared/blimp --out /tmp/la
    OMP_NUM_THREADS=2 python benchmarks/spaces.py gradient-cost --data-dir ../shared/blimp --out /tmp/gc
    OMP_NUM_THREADS=2 python benchmarks/spaces.py projection --data-dir ../shared/blimp

``ratio``: one task's gradient-differential pass against forward-only scoring of the same
100 pairs (medians of --repeats; goal <= 3.5x). ``gradient-cost``: a ``gradsim,overlap`` run's
gradient units (default strategies) on the issue's 6 paradigms (``--task``), without and with
``--split-half``, each in a fresh child process (``--python`` picks another install, for a
before/after comparison): per task, scoring its training pairs, its gradient unit(s) and a bare
differential pass alternate; reports the units' seconds as a ratio to scoring (goal <= 3.0x), the
split-half ratio (goal <= 1.15x), peak RSS (goal <= 2.5 GB) and MB written per task (goal <= 20);
medians of --repeats. ``projection``: how the ``projected`` gradsim space agrees with ``full`` on
12 paradigms (one per phenomenon) per ``--dims``. ``gradsim``/``transfer`` run the real CLI in
a child process and report its wall time and peak RSS, then whether same-phenomenon cells
exceed cross-phenomenon cells on average. ``executors``: the gradsim space of 12 tasks (one per
phenomenon) run serially (2 torch threads) and on a local Ray cluster with 2 workers (1 thread
each), alternating, each from an empty output directory; medians of --repeats and their ratio.
``ftgd-step``: one FTGD step on 16 training pairs with the task's 1% top-k mask, ``MaskedTuner``
(sparse Adam, masked linear weights' gradients at their masked entries only) against sparse Adam
with autograd's dense weight gradients and the first method (torch.optim.Adam over whole tensors, a
hook zeroing unmasked gradients), each against one gradient-differential pass on the same 16 pairs
(goal: step <= 1.3x the pass); steady-state steps (the second of a tune), alternating, medians
of --repeats. ``ftgd-tune``: one source's tune (default FTGD settings, early stopping on the
validation split) plus re-scoring its test split, the same three ways. ``ftgd-source`` (the
per-source cost of transfer in gradient differentials) and ``lookahead`` (the 67-task lookahead's
wall time): see ``ftgd_cost.py``.

Each command (but the internal ``gradient-child``) writes its figures with the commit and the
machine to ``--json`` (default ``benchmarks/results/spaces-<command>-<commit>.json``; see
``record.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import clock, context, default_model, one_per_phenomenon, run_cli
from ftgd_cost import ftgd_step, ftgd_tune, lookahead, source
from record import Record, add_json_option


def ratio(args: argparse.Namespace) -> dict:
    from lingspace_harness.gradients import gradient_differential
    from lingspace_harness.scoring import score_requests, sentence_requests

    ctx = context(args)
    pairs = ctx.data[args.task].train
    sentences = [s for p in pairs for s in (p.good, p.bad)]
    forward, backward = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        score_requests(ctx.model.model, sentence_requests(ctx.model.tokenizer, sentences, ctx.prefix_id))
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        gradient_differential(ctx.model.model, ctx.model.tokenizer, pairs, ctx.prefix_id, ctx.gradient_params)
        backward.append(time.perf_counter() - start)
    f, b = statistics.median(forward), statistics.median(backward)
    print(f"{args.task}, {len(pairs)} training pairs, {args.threads} threads")
    print(f"forward-only scoring: median {f:.2f} s; gradient differential: median {b:.2f} s; ratio {b / f:.2f}x")
    return {
        "task": args.task,
        "pairs": len(pairs),
        "scoring_s": f,
        "gradient_s": b,
        "ratio": b / f,
        "goal_ratio": 3.5,
        "scoring_each_s": forward,
        "gradient_each_s": backward,
    }


def within_between(results: dict, metric: str, key: str = "phenomenon") -> tuple[float, float]:
    space = results["spaces"][metric]
    labels = [results["tasks"][t][key] for t in space["tasks"]]
    m = np.array(space["matrix"], dtype=float)
    same = [m[i, j] for i in range(len(m)) for j in range(len(m)) if i != j and labels[i] == labels[j]]
    cross = [m[i, j] for i in range(len(m)) for j in range(len(m)) if labels[i] != labels[j]]
    return (float(np.mean(same)) if same else float("nan")), float(np.mean(cross))


def report(results: dict, metric: str) -> dict:
    """Print and return the mean same- and cross-label cell per label kind."""
    out = {}
    for key in ("phenomenon", "group", "field"):
        same, cross = within_between(results, metric, key)
        print(f"  {metric}: same-{key} mean {same:.4f}, cross-{key} mean {cross:.4f}")
        out[key] = {"same": same, "cross": cross}
    return out


def gradsim(args: argparse.Namespace) -> dict:
    wall, rss = run_cli(
        [
            "--model",
            args.model,
            "--tasks",
            "blimp_*",
            "--data-dir",
            str(args.data_dir),
            "--limit",
            str(args.pairs),
            "--metric",
            "gradsim,overlap",
            "--output",
            str(args.out),
        ]
    )
    results = json.loads((args.out / "results.json").read_text())
    print(
        f"gradsim + overlap, {len(results['tasks'])} tasks x {args.pairs} training pairs: "
        f"wall {wall:.0f} s, peak RSS {rss:.0f} MiB"
    )
    spaces = {metric: report(results, metric) for metric in ("gradsim", "overlap")}
    return {"tasks": len(results["tasks"]), "wall_s": wall, "peak_rss_mib": rss, "same_cross": spaces}


def transfer(args: argparse.Namespace) -> dict:
    tasks = one_per_phenomenon(args.data_dir)
    wall, rss = run_cli(
        [
            "--model",
            args.model,
            "--tasks",
            ",".join(tasks),
            "--data-dir",
            str(args.data_dir),
            "--limit",
            str(args.pairs),
            "--metric",
            "gradsim,overlap,transfer,lookahead,cka",
            "--output",
            str(args.out),
        ]
    )
    results = json.loads((args.out / "results.json").read_text())
    t = np.array(results["spaces"]["transfer"]["matrix"], dtype=float)  # undefined cells (None): NaN
    off = t[~np.eye(len(t), dtype=bool)]
    print(
        f"transfer, {len(tasks)} tasks (one per phenomenon) x {args.pairs} pairs per split: "
        f"wall {wall:.0f} s, peak RSS {rss:.0f} MiB"
    )
    diagonal, other = np.nanmean(np.diag(t)), np.nanmean(off)
    print(f"  margin change: own task (diagonal) mean {diagonal:.3f}, other tasks mean {other:.3f}")
    print(
        f"  perplexity before {results['spaces']['transfer']['perplexity_before']:.1f}, change per source "
        f"{[None if x is None else round(x, 1) for x in results['spaces']['transfer']['perplexity_change']]}"
    )
    return {
        "tasks": tasks,
        "wall_s": wall,
        "peak_rss_mib": rss,
        "diagonal_mean": diagonal,
        "off_diagonal_mean": other,
        "perplexity_before": results["spaces"]["transfer"]["perplexity_before"],
        "perplexity_change": results["spaces"]["transfer"]["perplexity_change"],
        "same_cross": {metric: report(results, metric) for metric in ("transfer", "lookahead", "cka")},
    }


def projection(args: argparse.Namespace) -> dict:
    """How the projected strategy's gradsim space agrees with the full one, on 12 tasks (one per
    phenomenon): max |cosine difference| and Spearman r of the off-diagonal cells, per dimension."""
    from lingspace_harness_plugins.gradsim import cosine, gram_by_layer
    from scipy.stats import spearmanr

    from lingspace_harness.gradient_cache import halves

    tasks = one_per_phenomenon(args.data_dir)
    args.task = ",".join(tasks)
    ctx = context(args)
    projected = ctx.harness.gradient_strategies.get("projected")
    layout = ctx.gradient_layout
    grads = []
    for task in tasks:  # the whole differential, as a run computes it: the sum of its halves'
        first, second = ctx.access.gradient_differentials(halves(ctx.data[task].train), ctx.gradient_params)
        first += second
        grads.append(first)
    exact = cosine(sum(gram_by_layer(grads, layout.layers()).values()))
    off = ~np.eye(len(tasks), dtype=bool)
    print(
        f"{len(tasks)} tasks x {args.pairs} training pairs, {layout.size} parameters; full gradsim off-diagonal "
        f"cells: mean {exact[off].mean():.4f}, sd {exact[off].std():.4f}"
    )
    print("| projection dim | MB per differential | max abs cosine difference | Spearman r (off-diagonal) |")
    print("|---|---|---|---|")
    rows = []
    for dim in args.dims:
        options = projected.Options(projection_dim=dim)
        sketches = [projected.reduce(g, layout, options) for g in grads]
        approx = cosine(sum(gram_by_layer(sketches, projected.layer_slices(layout, options)).values()))
        rho = spearmanr(approx[off], exact[off]).statistic
        print(
            f"| {dim} | {sketches[0].nbytes / 1e6:.2f} | {np.abs(approx - exact).max():.4f} | {rho:.4f} |", flush=True
        )
        rows.append(
            {
                "dim": dim,
                "mb_per_differential": sketches[0].nbytes / 1e6,
                "max_abs_cosine_difference": np.abs(approx - exact).max(),
                "spearman_r": rho,
            }
        )
    return {
        "tasks": tasks,
        "parameters": layout.size,
        "full_off_diagonal_mean": exact[off].mean(),
        "full_off_diagonal_sd": exact[off].std(),
        "projections": rows,
    }


#: The issue's six paradigms for the gradient-cost benchmark.
GRADIENT_TASKS = "blimp_anaphor_*,blimp_npi_present_*,blimp_passive_*"


def gradient_child(args: argparse.Namespace) -> None:
    """One measured run (a child process, so that its peak RSS is its own) of ``gradsim,overlap``
    (the default strategies) as `run` does it: per task, forward-only scoring of its training
    pairs, then its gradient unit (alternating, so that both see the same machine); then the
    spaces. Prints one JSON line: seconds (wall and CPU) of each, peak RSS, disk per task."""
    import tempfile

    import torch

    from lingspace_harness import RunConfig, Worker, load_harness
    from lingspace_harness.execution import plan_units
    from lingspace_harness.runner import assemble, prepare

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(dir=args.out) as out:
        config = RunConfig(
            model=args.model,
            tasks=args.task.split(","),
            data_dir=Path(args.data_dir),
            limit=args.pairs,
            metrics=["gradsim", "overlap"],
            split_half=args.split_half,
            output=Path(out),
            analysis=[],
        )
        ctx = prepare(load_harness(), config)
        ctx.scores("test")  # eval1, which every run does first; not part of either measurement
        worker = Worker(ctx)
        scoring, gradients, passes = np.zeros(2), np.zeros(2), np.zeros(2)
        units = [u for u in plan_units(ctx) if u.stage == 0]  # every gradient unit, of every variant
        for task in ctx.task_names:
            start = clock()
            ctx.score_pairs({task: ctx.data[task].train})
            scoring += clock() - start
            start = clock()
            for unit in (u for u in units if u.name == task):
                worker.run(unit)
            gradients += clock() - start
            start = clock()  # the bare pass: one differential of all the training pairs, nothing stored
            ctx.access.gradient_differential(ctx.data[task].train, ctx.gradient_params)
            passes += clock() - start
        assemble(ctx)
        units = [p for p in (Path(out) / "units").rglob("*.npy")]
        tasks = len(ctx.data)
        print(
            json.dumps(
                {
                    "scoring": scoring[0],
                    "gradients": gradients[0],
                    "scoring_cpu": scoring[1],
                    "gradients_cpu": gradients[1],
                    "pass": passes[0],
                    "tasks": tasks,
                    "pairs": sum(len(d.train) for d in ctx.data.values()),
                    "mb_per_task": sum(p.stat().st_size for p in units) / 1e6 / tasks,
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            )
        )


def gradient_cost(args: argparse.Namespace) -> dict:
    """The gradient work of a gradsim+overlap run as a ratio to scoring the same pairs, without and
    with --split-half, each in a fresh child process; alternating, medians of --repeats."""
    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {"plain": [], "split-half": []}
    for k in range(args.repeats):
        for mode in rows:
            argv = [
                args.python,
                __file__,
                "gradient-child",
                "--model",
                args.model,
                "--data-dir",
                str(args.data_dir),
                "--pairs",
                str(args.pairs),
                "--task",
                args.task,
                "--threads",
                str(args.threads),
                "--out",
                str(args.out),
            ] + (["--split-half"] if mode == "split-half" else [])
            line = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows[mode].append(json.loads(line))
            r = rows[mode][-1]
            print(
                f"  {mode} run {k + 1}: scoring {r['scoring']:.1f} s, gradient units {r['gradients']:.1f} s "
                f"({r['gradients'] / r['scoring']:.2f}x; CPU {r['gradients_cpu'] / r['scoring_cpu']:.2f}x), "
                f"peak {r['peak_mb']:.0f} MiB, {r['mb_per_task']:.1f} MB per task",
                flush=True,
            )
    med = {m: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for m, rs in rows.items()}
    ratio = {m: statistics.median(r["gradients"] / r["scoring"] for r in rs) for m, rs in rows.items()}
    cpu = {m: statistics.median(r["gradients_cpu"] / r["scoring_cpu"] for r in rs) for m, rs in rows.items()}
    plain, split = med["plain"], med["split-half"]
    print(
        f"{plain['tasks']:.0f} tasks ({args.task}), {plain['pairs']:.0f} training pairs, {args.threads} threads, "
        f"medians of {args.repeats}:"
    )
    bare = statistics.median(r["pass"] / r["scoring"] for rs in rows.values() for r in rs)
    print(
        f"  gradient work / scoring the same pairs: {ratio['plain']:.2f}x (goal <= 3.0x; CPU {cpu['plain']:.2f}x); "
        f"with --split-half {ratio['split-half']:.2f}x (CPU {cpu['split-half']:.2f}x); the bare pass over the "
        f"same pairs (gradient_differential, nothing stored) {bare:.2f}x"
    )
    print(
        f"  --split-half / without: {ratio['split-half'] / ratio['plain']:.3f}x in ratios to scoring (goal <= 1.15x; "
        f"CPU {cpu['split-half'] / cpu['plain']:.3f}x), {split['gradients'] / plain['gradients']:.3f}x in seconds"
    )
    print(f"  peak RSS: {plain['peak_mb']:.0f} MiB, with --split-half {split['peak_mb']:.0f} MiB (goal <= 2.5 GB)")
    print(
        f"  on disk per task: {plain['mb_per_task']:.1f} MB, with --split-half {split['mb_per_task']:.1f} MB "
        f"(goal <= 20 MB)"
    )
    return {
        "tasks": plain["tasks"],
        "pairs": plain["pairs"],
        "ratio": ratio,
        "ratio_cpu": cpu,
        "bare_pass_ratio": bare,
        "split_half_over_plain": ratio["split-half"] / ratio["plain"],
        "split_half_over_plain_cpu": cpu["split-half"] / cpu["plain"],
        "split_half_over_plain_seconds": split["gradients"] / plain["gradients"],
        "peak_rss_mib": {m: med[m]["peak_mb"] for m in med},
        "mb_per_task": {m: med[m]["mb_per_task"] for m in med},
        "goals": {"ratio": 3.0, "split_half_over_plain": 1.15, "peak_rss_mib": 2.5e9 / 2**20, "mb_per_task": 20},
        "medians": med,
        "runs": rows,
    }


def executors(args: argparse.Namespace) -> dict:
    tasks = ",".join(one_per_phenomenon(args.data_dir))
    base = [
        "--model",
        args.model,
        "--tasks",
        tasks,
        "--data-dir",
        str(args.data_dir),
        "--limit",
        str(args.pairs),
        "--metric",
        "gradsim",
        "--analysis",
        "none",
    ]
    modes = {"serial": [], "ray": ["--executor", "ray", "--workers", "2", "--worker-cpus", "1"]}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    for k in range(args.repeats):
        for mode, extra in modes.items():
            out = args.out / f"{mode}-{k}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            walls[mode].append(run_cli(base + extra + ["--output", str(out)])[0])
            subprocess.run(["rm", "-rf", str(out / "units")], check=True)  # 12 x 0.4 GB of differentials
            print(f"  {mode} run {k + 1}: {walls[mode][-1]:.1f} s", flush=True)
    spaces = {
        m: np.array(json.loads((args.out / f"{m}-0" / "results.json").read_text())["spaces"]["gradsim"]["matrix"])
        for m in modes
    }
    serial, ray = (statistics.median(walls[m]) for m in modes)
    print(
        f"gradsim, 12 tasks x {args.pairs} training pairs: serial median {serial:.1f} s, "
        f"ray (2 workers) median {ray:.1f} s; serial/ray {serial / ray:.2f}x"
    )
    print(f"  max |gradsim serial - ray| = {np.abs(spaces['serial'] - spaces['ray']).max():.2e}")
    return {
        "serial_s": serial,
        "ray_s": ray,
        "serial_over_ray": serial / ray,
        "each_s": walls,
        "max_abs_difference": np.abs(spaces["serial"] - spaces["ray"]).max(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = {
        "ratio": ratio,
        "gradsim": gradsim,
        "transfer": transfer,
        "executors": executors,
        "ftgd-step": ftgd_step,
        "ftgd-tune": ftgd_tune,
        "ftgd-source": source,
        "lookahead": lookahead,
        "projection": projection,
        "gradient-cost": gradient_cost,
        "gradient-child": gradient_child,
    }
    parser.add_argument("what", choices=list(commands))
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LINGSPACE_BLIMP_DIR", "../shared/blimp")))
    parser.add_argument("--pairs", type=int, default=100, help="--limit: pairs per split")
    parser.add_argument(
        "--task",
        help="task (name or glob, comma-separated); default blimp_anaphor_number_agreement, "
        f"for gradient-cost {GRADIENT_TASKS}",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--split-half", action="store_true", help=argparse.SUPPRESS)  # gradient-child
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="gradient-cost: the interpreter of the measured runs (e.g. a venv with another "
        "version of the project installed, for a before/after comparison)",
    )
    add_json_option(parser)
    parser.add_argument(
        "--dims",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[256, 1024, 4096],
        help="projection: the dimensions compared with full (comma-separated)",
    )
    args = parser.parse_args()
    args.task = args.task or (GRADIENT_TASKS if args.what.startswith("gradient-") else "blimp_anaphor_number_agreement")
    os.environ.setdefault("LINGSPACE_NO_PROGRESS", "1")
    if args.what == "gradient-child":  # a measured run of gradient-cost: its parent records it
        gradient_child(args)
        return
    record = Record(f"spaces-{args.what}", args)
    record.write(commands[args.what](args))


if __name__ == "__main__":
    main()
