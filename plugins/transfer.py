"""Similarity probing: ``transfer`` (FTGD-tune on each source task, re-score every task) and
``lookahead`` (its cheap estimate from a few FTGD steps)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from lingspace_harness import MetricResult, RunContext, Space, hookimpl
from lingspace_harness.ftgd import FTGDSettings, MaskedTuner
from lingspace_harness.progress import progress_bar


def evaluate(ctx: RunContext, desc: str) -> dict[str, Any]:
    """Accuracy and mean margin of every task's test split, and perplexity on general text
    (the good test sentences of all tasks)."""
    scores = ctx.score_pairs({t: d.test for t, d in ctx.data.items()}, desc=desc)
    return summarize(ctx, scores)


def summarize(ctx: RunContext, scores: dict[str, list]) -> dict[str, Any]:
    acc = {t: float(np.mean([s.margin > 0 for s in ss])) for t, ss in scores.items()}
    margin = {t: float(np.mean([s.margin for s in ss])) for t, ss in scores.items()}
    logp = sum(s.logp_good for ss in scores.values() for s in ss)
    return {"accuracy": acc, "margin": margin, "perplexity": math.exp(-logp / ctx_good_tokens(ctx))}


def ctx_good_tokens(ctx: RunContext) -> int:
    if not hasattr(ctx, "_good_tokens"):
        goods = [p.good for d in ctx.data.values() for p in d.test]
        encoded = ctx.model.tokenizer([" " + s for s in goods], add_special_tokens=False)["input_ids"]
        ctx._good_tokens = sum(len(e) for e in encoded)
    return ctx._good_tokens


def settings(ctx: RunContext, steps: int | None = None, early: bool = True) -> FTGDSettings:
    c = ctx.config
    return FTGDSettings(lr=c.ftgd_lr, steps=steps or c.ftgd_steps, batch=c.ftgd_batch,
                        eval_every=c.ftgd_eval_every, patience=c.ftgd_patience, early_stopping=early,
                        seed=c.seed)


def probe(ctx: RunContext, kind: str, source: str, mask: np.ndarray | None, tune: FTGDSettings,
          base: dict[str, Any]) -> dict[str, Any]:
    """Tune a copy (in place, restored afterwards) on ``source``; return the evaluation rows."""
    tuner = MaskedTuner(ctx.model.model, ctx.gradient_params, mask)
    data = ctx.data[source]
    try:
        report = tuner.tune(ctx.model.tokenizer, ctx.prefix_id, data.train, data.validation, tune)
        after = evaluate(ctx, f"{kind}: eval2 after {source}")
    finally:
        tuner.restore()
    return {"accuracy": {t: after["accuracy"][t] - base["accuracy"][t] for t in ctx.task_names},
            "margin": {t: after["margin"][t] - base["margin"][t] for t in ctx.task_names},
            "perplexity_change": after["perplexity"] - base["perplexity"],
            "steps": report.steps, "best_step": report.best_step,
            "validation_margins": report.validation_margins,
            "n_tuned": int(mask.size) if mask is not None else sum(p.numel() for _, p in ctx.gradient_params)}


def rows_to_space(tasks: list[str], rows: dict[str, dict[str, Any]], key: str) -> list[list[float]]:
    return [[rows[s][key][t] for t in tasks] for s in tasks]


def normalised(matrix: list[list[float]]) -> list[list[float | None]]:
    """Each row divided by its diagonal; None where tuning did not move its own task."""
    return [[v / row[i] if row[i] else None for v in row] for i, row in enumerate(matrix)]


class Transfer:
    name = "transfer"
    description = "FTGD-tune on each source task's top-k mask, re-score every task: eval2 - eval1"

    def strategies(self, ctx: RunContext) -> list[str]:
        return ["topk"]

    def _rows(self, ctx: RunContext, kind: str, masked: bool, base: dict[str, Any]) -> dict[str, Any]:
        c = ctx.config
        store = ctx.units(kind, topk=c.topk if masked else None, lr=c.ftgd_lr, steps=c.ftgd_steps,
                          batch=c.ftgd_batch, eval_every=c.ftgd_eval_every, patience=c.ftgd_patience,
                          tasks=ctx.task_names)
        rows = {}
        todo = [s for s in ctx.task_names if not store.has(s, ".json")]
        with progress_bar(len(todo), f"{kind}: tuned models", unit="task") as bar:
            for source in ctx.task_names:
                if store.has(source, ".json"):
                    rows[source] = store.load_json(source)
                    continue
                mask = np.asarray(ctx.gradient("topk", source)) if masked else None
                rows[source] = probe(ctx, kind, source, mask, settings(ctx), base)
                store.save_json(source, rows[source])
                bar.update(1)
        return rows

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        base = summarize(ctx, ctx.scores("test"))
        rows = self._rows(ctx, "transfer", True, base)
        margin = rows_to_space(tasks, rows, "margin")
        extra: dict[str, Any] = {
            "variant": "margin",
            "accuracy": rows_to_space(tasks, rows, "accuracy"),
            "normalised": normalised(margin),
            "perplexity_before": base["perplexity"],
            "perplexity_change": [rows[s]["perplexity_change"] for s in tasks],
            "steps": [rows[s]["steps"] for s in tasks],
            "n_tuned": [rows[s]["n_tuned"] for s in tasks],
        }
        if ctx.config.transfer_baseline:
            full = self._rows(ctx, "transfer-baseline", False, base)
            extra["baseline"] = {
                "margin": rows_to_space(tasks, full, "margin"),
                "accuracy": rows_to_space(tasks, full, "accuracy"),
                "perplexity_change": [full[s]["perplexity_change"] for s in tasks],
                "summary": {"ftgd": movement(margin), "full": movement(rows_to_space(tasks, full, "margin"))},
            }
        return MetricResult(space=Space(tasks, margin, extra))


def movement(matrix: list[list[float]]) -> dict[str, float]:
    """How far tuning moved its own task (diagonal) against the others (off-diagonal)."""
    m = np.array(matrix)
    off = m[~np.eye(len(m), dtype=bool)]
    return {"target": float(np.mean(np.diag(m))), "collateral_abs": float(np.mean(np.abs(off))) if off.size else 0.0}


class Lookahead:
    name = "lookahead"
    description = "cheap transfer estimate: margin change on every task after a few FTGD steps on each source"

    def strategies(self, ctx: RunContext) -> list[str]:
        return ["topk"]

    def compute(self, ctx: RunContext) -> MetricResult:
        c = ctx.config
        tasks = ctx.task_names
        base = summarize(ctx, ctx.scores("test"))
        store = ctx.units("lookahead", topk=c.topk, lr=c.ftgd_lr, steps=c.lookahead_steps,
                          batch=c.ftgd_batch, tasks=tasks)
        rows = {}
        todo = [s for s in tasks if not store.has(s, ".json")]
        with progress_bar(len(todo), "lookahead", unit="task") as bar:
            for source in tasks:
                if store.has(source, ".json"):
                    rows[source] = store.load_json(source)
                    continue
                mask = np.asarray(ctx.gradient("topk", source))
                rows[source] = probe(ctx, "lookahead", source, mask,
                                     settings(ctx, steps=c.lookahead_steps, early=False), base)
                store.save_json(source, rows[source])
                bar.update(1)
        margin = rows_to_space(tasks, rows, "margin")
        return MetricResult(space=Space(tasks, margin, {
            "variant": "margin", "steps": c.lookahead_steps,
            "accuracy": rows_to_space(tasks, rows, "accuracy"), "normalised": normalised(margin)}))


@hookimpl
def lingspace_register_metrics(register):
    register(Transfer())
    register(Lookahead())
