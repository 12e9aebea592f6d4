"""Similarity probing: FTGD-tune the model on each source task, evaluate, restore.

eval1 is the base model's accuracy and margin on every task's test split; for each source
task a copy is tuned (in place: only the masked entries change, and they are written back
afterwards) and every task is scored again (eval2). Each source's row is one unit of work,
saved under the output directory, so reruns skip finished sources. With ``with_states``
the unit also keeps the tuned model's pooled hidden states on the probe set (for CKA). A
source whose tuning early stopping rejected (the best validation margin was the untuned
model's) is stored as ``tuned: false`` with undefined (null) changes, not as zeros.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lingspace_harness import PairScore, RunContext, UnitStore, progress_bar, task_delimiter

from .tuner import FTGDSettings, MaskedTuner

#: Probe set for representations: this many good test sentences of each task.
PROBE_PER_TASK = 16
#: The capability whose gradient reduction is the FTGD mask.
MASK = "mask"


@dataclass(frozen=True)
class Tuning:
    """One way of tuning every source: the unit kind it is stored as, its settings, whether
    it tunes the source's mask (else every parameter), and whether it keeps probe states."""

    kind: str
    settings: FTGDSettings
    masked: bool = True
    with_states: bool = False


def good_test_tokens(ctx: RunContext) -> int:
    """How many tokens the good test sentences of all tasks have (the perplexity denominator)."""
    goods = [task_delimiter(d.task) + p.good for d in ctx.data.values() for p in d.test]
    return sum(len(e) for e in ctx.model.tokenizer(goods, add_special_tokens=False)["input_ids"])


def summarize(scores: dict[str, list[PairScore]], n_tokens: int) -> dict[str, Any]:
    """Per-task accuracy and mean margin, and perplexity on the good test sentences of all tasks."""
    logp = sum(s.logp_good for ss in scores.values() for s in ss)
    return {"accuracy": {t: float(np.mean([s.margin > 0 for s in ss])) for t, ss in scores.items()},
            "margin": {t: float(np.mean([s.margin for s in ss])) for t, ss in scores.items()},
            "perplexity": math.exp(-logp / n_tokens)}


def probe_sentences(ctx: RunContext) -> list[str]:
    return [p.good for d in ctx.data.values() for p in d.test[:PROBE_PER_TASK]]


def probe_states(ctx: RunContext) -> np.ndarray:
    """Pooled states of the probe sentences, each after a space (as CKA's untuned states are)."""
    return ctx.access.hidden_states(probe_sentences(ctx))


def _store(ctx: RunContext, tuning: Tuning) -> UnitStore:
    mask = None
    if tuning.masked:
        strategy = ctx.provider(MASK).name
        options = ctx.options(strategy)
        mask = {"strategy": strategy, "options": asdict(options) if hasattr(options, "__dataclass_fields__")
                else dict(options)}
    return ctx.units(tuning.kind, mask=mask, tasks=ctx.task_names, ftgd=asdict(tuning.settings))


def pending_sources(ctx: RunContext, tuning: Tuning) -> list[str]:
    """Source tasks whose tuned row (and, ``with_states``, probe states) is not stored yet."""
    store = _store(ctx, tuning)
    return [s for s in ctx.task_names
            if not store.has(s, ".json") or (tuning.with_states and not store.has(s, ".npy"))]


def tuned_row(ctx: RunContext, tuning: Tuning, source: str) -> dict[str, Any]:
    """Tune on ``source`` (FTGD on its mask, or every parameter), re-score every task, restore
    the model, and store the row: eval2 - eval1 per task (accuracy, margin), the perplexity
    change, and how tuning went. One unit of work."""
    store = _store(ctx, tuning)
    n_tokens = good_test_tokens(ctx)
    base = summarize(ctx.scores("test"), n_tokens)
    mask = np.asarray(ctx.gradient(ctx.provider(MASK).name, source)) if tuning.masked else None
    data = ctx.data[source]
    tuner = MaskedTuner(ctx.access.model, ctx.gradient_params, mask)
    try:
        report = tuner.tune(ctx.access, data.train, data.validation, tuning.settings,
                            delimiter=task_delimiter(data.task))
        tuned = report.best_step > 0
        after = summarize(ctx.score_pairs({t: d.test for t, d in ctx.data.items()},
                                          desc=f"{tuning.kind}: eval2 after {source}"), n_tokens) if tuned else None
        if tuning.with_states:
            store.save_array(source, probe_states(ctx))
    finally:
        tuner.restore()
    row = {
        "tuned": tuned,
        "accuracy": {t: after["accuracy"][t] - base["accuracy"][t] if after else None for t in ctx.task_names},
        "margin": {t: after["margin"][t] - base["margin"][t] if after else None for t in ctx.task_names},
        "perplexity_before": base["perplexity"],
        "perplexity_change": after["perplexity"] - base["perplexity"] if after else None,
        "steps": report.steps, "best_step": report.best_step,
        "validation_margins": report.validation_margins,
        "n_tuned": int(mask.size) if mask is not None else sum(p.numel() for _, p in ctx.gradient_params),
    }
    store.save_json(source, row)
    return row


def tuned_rows(ctx: RunContext, tuning: Tuning) -> dict[str, dict[str, Any]]:
    """Every source task's row (see ``tuned_row``): stored rows are read, missing ones computed."""
    todo = pending_sources(ctx, tuning)
    with progress_bar(len(todo), f"{tuning.kind}: tuned models", unit="task") as bar:
        for source in todo:
            tuned_row(ctx, tuning, source)
            bar.update(1)
    store = _store(ctx, tuning)
    return {source: store.load_json(source) for source in ctx.task_names}


def tuned_states(ctx: RunContext, tuning: Tuning, source: str) -> np.ndarray:
    """The pooled probe-set states of the model tuned on ``source`` (``with_states`` rows)."""
    return _store(ctx, tuning).load_array(source)
