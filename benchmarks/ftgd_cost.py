"""What FTGD costs: a step, a tune, a transfer source unit and the 67-task lookahead, against a
gradient differential (run through ``benchmarks/spaces.py``: ``ftgd-step``, ``ftgd-tune``,
``ftgd-source``, ``lookahead``).

``ftgd-source``: one FTGD source unit of ``transfer`` exactly as a run does it (``tuned_row``: tune
with the default settings and early stopping, re-score every target task, store the row), in a run
over the 12 one-per-phenomenon paradigms at ``--pairs`` per split, against one gradient
differential of the source's training pairs (``--task``); the unit runs with masked linear weights
getting their gradient at the masked entries only (the default) and, as the reference, with
autograd's dense weight gradients; alternating, medians of ``--repeats``, and the largest
difference between the two rows. The ratio is the per-source cost in gradient differentials (goal
<= 6x). ``lookahead``: the 67-task lookahead space through the real CLI (``--limit 20 --metric
lookahead --lookahead-targets 10``, the README's measurement; goal <= 20 min), its wall time and
peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from common import clock, context, one_per_phenomenon, report_medians, run_cli


def dense_tuner_class():
    """The previous FTGD optimiser, for comparison: torch.optim.Adam over every entry of each
    tensor with a masked entry, and a gradient hook zeroing the unmasked entries."""
    import torch
    from lingspace_harness_plugins.ftgd.tuner import MaskedTuner

    class DenseMaskedTuner(MaskedTuner):
        def __init__(self, model, params, mask) -> None:
            super().__init__(model, params, mask, masked_weights=False)

        def optimizer(self, lr: float):
            self.hooks = []
            for i in self.trainable:
                param = self.params[i]
                entries = torch.zeros(param.numel(), dtype=torch.bool)
                entries[self.indices[i]] = True
                self.hooks.append(param.register_hook(lambda g, m=entries.reshape(param.shape): g * m))  # noqa: B008
            return torch.optim.Adam([self.params[i] for i in self.trainable], lr=lr, weight_decay=0.0)

        def tune(self, *args, **kwargs):
            try:
                return super().tune(*args, **kwargs)
            finally:
                for hook in self.hooks:
                    hook.remove()

    return DenseMaskedTuner


def topk_mask(ctx, pairs) -> np.ndarray:
    """The 1% (--topk default) top-k mask of the gradient differential of ``pairs``."""
    topk = ctx.harness.gradient_strategies.get("topk")
    grad = ctx.access.gradient_differential(pairs, ctx.gradient_params)
    return topk.reduce(grad, ctx.gradient_layout, topk.Options())


def ftgd_step(args: argparse.Namespace) -> dict:
    from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner

    ctx = context(args)
    model = ctx.model.model
    mask = topk_mask(ctx, ctx.data[args.task].train)
    batch = ctx.data[args.task].train[:16]
    settings = FTGDSettings(steps=2, batch=len(batch), early_stopping=False)
    tuners = {
        "dense Adam (first)": dense_tuner_class(),
        "sparse Adam, dense weight gradients": functools.partial(MaskedTuner, masked_weights=False),
        "sparse Adam, masked weight gradients (now)": MaskedTuner,
    }
    times: dict[str, list[np.ndarray]] = {"gradient differential": [], **{name: [] for name in tuners}}
    for _ in range(args.repeats):
        start = clock()
        ctx.access.gradient_differential(batch, ctx.gradient_params)
        times["gradient differential"].append(clock() - start)
        for name, cls in tuners.items():
            stamps: list[np.ndarray] = []
            tuner = cls(model, ctx.gradient_params, mask)
            tuner.tune(ctx.access, batch, [], settings, progress=lambda _: stamps.append(clock()))  # noqa: B023
            tuner.restore()
            times[name].append(stamps[1] - stamps[0])  # the second step: optimiser state exists
    print(
        f"{args.task}, {len(batch)} training pairs, mask {mask.size} of {ctx.gradient_layout.size} entries, "
        f"{args.threads} threads; medians of {args.repeats}, ratios to the gradient differential"
    )
    methods = report_medians(times, "gradient differential")
    return {
        "task": args.task,
        "pairs": len(batch),
        "mask_entries": mask.size,
        "parameters": ctx.gradient_layout.size,
        "base": "gradient differential",
        "goal_ratio": 1.3,
        "methods": methods,
    }


def ftgd_tune(args: argparse.Namespace) -> dict:
    from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner

    ctx = context(args)
    model, data = ctx.model.model, ctx.data[args.task]
    mask = topk_mask(ctx, data.train)
    tuners = {
        "sparse (now)": MaskedTuner,
        "dense weight gradients": functools.partial(MaskedTuner, masked_weights=False),
        "dense Adam (first)": dense_tuner_class(),
    }
    times: dict[str, list[np.ndarray]] = {name: [] for name in tuners}
    tunes: dict[str, list[dict]] = {name: [] for name in tuners}
    for _ in range(args.repeats):
        for name, cls in tuners.items():
            start = clock()
            tuner = cls(model, ctx.gradient_params, mask)
            report = tuner.tune(ctx.access, data.train, data.validation, FTGDSettings())
            margin = ctx.access.mean_margin(data.test)
            tuner.restore()
            times[name].append(clock() - start)
            tunes[name].append({"steps": report.steps, "best_step": report.best_step, "test_margin": margin})
            print(
                f"  {name}: wall {times[name][-1][0]:.1f} s, {report.steps} steps (best {report.best_step}), "
                f"test margin {margin:.4f}",
                flush=True,
            )
    print(
        f"{args.task}: tune + re-score its test split, {len(data.train)} training pairs, {args.threads} threads; "
        f"medians of {args.repeats}, ratios to the new method"
    )
    methods = report_medians(times, "sparse (now)")
    return {"task": args.task, "pairs": len(data.train), "base": "sparse (now)", "methods": methods, "tunes": tunes}


def source(args: argparse.Namespace) -> dict:
    from lingspace_harness_plugins.ftgd import probing

    tasks = one_per_phenomenon(args.data_dir)
    tasks = tasks if args.task in tasks else [args.task, *tasks[:-1]]
    with tempfile.TemporaryDirectory() as out:
        ctx = context(args, tasks, metrics=["transfer"], output=Path(out), analysis=[])
        ctx.scores("test")  # eval1, once per run
        transfer = ctx.harness.metrics.get("transfer")
        tuning = transfer.tunings(ctx)[0]
        ctx.gradient(ctx.provider("mask").name, args.task)  # the source's mask unit, once per source
        train = ctx.data[args.task].train
        dense = functools.partial(probing.MaskedTuner, masked_weights=False)
        units = {"FTGD source unit": probing.MaskedTuner, "FTGD source unit, dense weight gradients": dense}
        times: dict[str, list[np.ndarray]] = {"gradient differential": [], **{name: [] for name in units}}
        rows = {}
        for _ in range(args.repeats):
            start = clock()
            ctx.access.gradient_differential(train, ctx.gradient_params)
            times["gradient differential"].append(clock() - start)
            for name, tuner in units.items():
                with mock.patch.object(probing, "MaskedTuner", tuner):
                    start = clock()
                    rows[name] = row = probing.tuned_row(ctx, tuning, args.task)
                    times[name].append(clock() - start)
    print(
        f"{args.task}: {len(train)} training pairs, {row['steps']} steps (best {row['best_step']}), "
        f"re-scoring {len(tasks)} tasks x {args.pairs} test pairs, {args.threads} threads; medians of "
        f"{args.repeats}, ratios to one gradient differential of the training pairs (goal <= 6x)"
    )
    methods = report_medians(times, "gradient differential")
    a, b = (np.array([r["margin"][t] for t in tasks]) for r in rows.values())
    print(
        f"  rows: max |margin change, masked - dense weight gradients| {np.abs(a - b).max():.2e} "
        f"(largest |margin change| {np.abs(b).max():.3f})"
    )
    return {
        "task": args.task,
        "tasks": tasks,
        "pairs": len(train),
        "steps": row["steps"],
        "best_step": row["best_step"],
        "base": "gradient differential",
        "goal_ratio": 6.0,
        "methods": methods,
        "rows_max_abs_difference": np.abs(a - b).max(),
        "rows_max_abs_margin_change": np.abs(b).max(),
    }


def lookahead(args: argparse.Namespace) -> dict:
    wall, rss = run_cli(
        [
            "--model",
            args.model,
            "--tasks",
            "blimp_*",
            "--data-dir",
            str(args.data_dir),
            "--limit",
            "20",
            "--metric",
            "lookahead",
            "--lookahead-targets",
            "10",
            "--output",
            str(args.out),
        ]
    )
    print(
        f"67-task lookahead space (--limit 20 --lookahead-targets 10): wall {wall / 60:.1f} min "
        f"(goal <= 20 min), peak RSS {rss:.0f} MiB"
    )
    return {"wall_s": wall, "goal_wall_s": 20 * 60, "peak_rss_mib": rss}
