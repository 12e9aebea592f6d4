"""Similarity probing: FTGD-tune the model on each source task, evaluate, restore.

eval1 is the base model's accuracy and margin on every task's test split; for each source
task a copy is tuned (in place: only the masked entries change, and they are written back
afterwards) and every task is scored again (eval2). Each source's row is one unit of work,
saved under the output directory, so reruns skip finished sources. With ``with_states``
the unit also keeps the tuned model's pooled hidden states on the probe set (for CKA).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .ftgd import FTGDSettings, MaskedTuner
from .progress import progress_bar
from .representations import pooled_hidden_states
from .runner import PairScore, RunContext

#: Probe set for representations: this many good test sentences of each task.
PROBE_PER_TASK = 16


def ftgd_settings(ctx: RunContext, steps: int | None = None, early_stopping: bool = True) -> FTGDSettings:
    c = ctx.config
    return FTGDSettings(lr=c.ftgd_lr, steps=steps or c.ftgd_steps, batch=c.ftgd_batch,
                        eval_every=c.ftgd_eval_every, patience=c.ftgd_patience,
                        early_stopping=early_stopping, seed=c.seed)


def good_test_tokens(ctx: RunContext) -> int:
    """How many tokens the good test sentences of all tasks have (the perplexity denominator)."""
    if "good_test_tokens" not in ctx.memo:
        goods = [" " + p.good for d in ctx.data.values() for p in d.test]
        ctx.memo["good_test_tokens"] = sum(len(e) for e in ctx.model.tokenizer(goods, add_special_tokens=False)["input_ids"])
    return ctx.memo["good_test_tokens"]


def summarize(ctx: RunContext, scores: dict[str, list[PairScore]], n_tokens: int) -> dict[str, Any]:
    """Per-task accuracy and mean margin, and perplexity on the good test sentences of all tasks
    (``n_tokens``: see ``good_test_tokens``)."""
    logp = sum(s.logp_good for ss in scores.values() for s in ss)
    return {"accuracy": {t: float(np.mean([s.margin > 0 for s in ss])) for t, ss in scores.items()},
            "margin": {t: float(np.mean([s.margin for s in ss])) for t, ss in scores.items()},
            "perplexity": math.exp(-logp / n_tokens)}


def probe_sentences(ctx: RunContext) -> list[str]:
    return [p.good for d in ctx.data.values() for p in d.test[:PROBE_PER_TASK]]


def probe_states(ctx: RunContext) -> np.ndarray:
    return pooled_hidden_states(ctx.model.model, ctx.model.tokenizer, probe_sentences(ctx), ctx.prefix_id)


def pending_sources(ctx: RunContext, kind: str, *, masked: bool = True, steps: int | None = None,
                    early_stopping: bool = True, with_states: bool = False) -> list[str]:
    """Source tasks whose tuned row (and, ``with_states``, probe states) is not stored yet."""
    store = _store(ctx, kind, masked, ftgd_settings(ctx, steps, early_stopping))
    return [s for s in ctx.task_names if not store.has(s, ".json") or (with_states and not store.has(s, ".npy"))]


def tuned_row(ctx: RunContext, kind: str, source: str, *, masked: bool = True, steps: int | None = None,
              early_stopping: bool = True, with_states: bool = False) -> dict[str, Any]:
    """Tune on ``source`` (FTGD on its top-k mask, or every parameter), re-score every task,
    restore the model, and store the row: eval2 - eval1 per task (accuracy, margin), the
    perplexity change, and how tuning went. One unit of work."""
    settings = ftgd_settings(ctx, steps, early_stopping)
    store = _store(ctx, kind, masked, settings)
    n_tokens = good_test_tokens(ctx)
    base = summarize(ctx, ctx.scores("test"), n_tokens)
    mask = np.asarray(ctx.gradient("topk", source)) if masked else None
    data = ctx.data[source]
    tuner = MaskedTuner(ctx.model.model, ctx.gradient_params, mask)
    try:
        report = tuner.tune(ctx.model.tokenizer, ctx.prefix_id, data.train, data.validation, settings)
        after = summarize(ctx, ctx.score_pairs({t: d.test for t, d in ctx.data.items()},
                                               desc=f"{kind}: eval2 after {source}"), n_tokens)
        if with_states:
            store.save_array(source, probe_states(ctx))
    finally:
        tuner.restore()
    row = {
        "accuracy": {t: after["accuracy"][t] - base["accuracy"][t] for t in ctx.task_names},
        "margin": {t: after["margin"][t] - base["margin"][t] for t in ctx.task_names},
        "perplexity_before": base["perplexity"],
        "perplexity_change": after["perplexity"] - base["perplexity"],
        "steps": report.steps, "best_step": report.best_step,
        "validation_margins": report.validation_margins,
        "n_tuned": int(mask.size) if mask is not None else sum(p.numel() for _, p in ctx.gradient_params),
    }
    store.save_json(source, row)
    return row


def tuned_rows(ctx: RunContext, kind: str, *, masked: bool = True, steps: int | None = None,
               early_stopping: bool = True, with_states: bool = False) -> dict[str, dict[str, Any]]:
    """Every source task's row (see ``tuned_row``): stored rows are read, missing ones computed."""
    options = dict(masked=masked, steps=steps, early_stopping=early_stopping, with_states=with_states)
    todo = pending_sources(ctx, kind, **options)
    with progress_bar(len(todo), f"{kind}: tuned models", unit="task") as bar:
        for source in todo:
            tuned_row(ctx, kind, source, **options)
            bar.update(1)
    store = _store(ctx, kind, masked, ftgd_settings(ctx, steps, early_stopping))
    return {source: store.load_json(source) for source in ctx.task_names}


def tuned_states(ctx: RunContext, kind: str, source: str, *, masked: bool = True, steps: int | None = None,
                 early_stopping: bool = True) -> np.ndarray:
    """The pooled probe-set states of the model tuned on ``source``, saved by
    ``tuned_rows(..., with_states=True)`` with the same settings."""
    return _store(ctx, kind, masked, ftgd_settings(ctx, steps, early_stopping)).load_array(source)


def _store(ctx: RunContext, kind: str, masked: bool, settings: FTGDSettings):
    return ctx.units(kind, topk=ctx.config.topk if masked else None, tasks=ctx.task_names,
                     ftgd=dict(settings.__dict__))
