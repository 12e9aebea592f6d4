"""Similarity probing: FTGD-tune the model on each source task, evaluate, restore.

eval1 is the base model's accuracy and margin on every task's test split (its first
``targets`` pairs, if set); for each source task a copy is tuned (in place: only the masked
entries change, and they are written back afterwards) and the same test pairs of every task
are scored again (eval2). The perplexity change is measured on a general text file, or else
on the good sentences of those test pairs (``perplexity_on`` says which). Each source's row is one unit of work,
saved under the output directory, so reruns skip finished sources. With ``with_states``
the unit also keeps the tuned model's pooled hidden states on the probe set (for CKA). A
source whose tuning early stopping rejected (the best validation margin was the untuned
model's) is stored as ``tuned: false`` with undefined (null) changes, not as zeros.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lingspace_harness import PairScore, RunContext, UnitStore
from lingspace_harness.progress import progress_bar
from lingspace_harness.tasks import task_delimiter

from .controls import PerplexityText, source_mask
from .tuner import MaskedTuner
from .tuning import Tuning, save_update, targets, unit_settings

#: Probe set for representations: this many good test sentences of each task.
PROBE_PER_TASK = 16


def text_perplexity(ctx: RunContext, text: PerplexityText) -> float:
    """Token-weighted perplexity of the model on the text (each line after a space): exp(-sum log p / tokens)."""
    logps, counts = ctx.access.score_counted(list(text.lines))
    return math.exp(-float(np.sum(logps)) / sum(counts))


def base_text_perplexity(ctx: RunContext, text: PerplexityText) -> float:
    """The untuned model's ``text_perplexity``, computed once per run: a stored unit, keyed by
    the text's sha256 (and, as every unit, the model and the data)."""
    store = ctx.units("perplexity-text", sha256=text.sha256)
    if not store.has("base", ".json"):
        store.save_json("base", text_perplexity(ctx, text))
    return store.load_json("base")


def evaluate(ctx: RunContext, tuning: Tuning, scores: dict[str, list[PairScore]], tuned: bool) -> dict[str, Any]:
    """``summarize`` of the scored target pairs; with ``tuning.text`` its perplexity is the text's
    (and the one on the BLiMP good sentences is ``blimp_perplexity``). ``tuned``: the model is
    not the base one, so its text perplexity is measured, not read from the run's unit."""
    counts = [s.n_good for ss in scores.values() for s in ss]  # the scored tokens, counted by scoring
    if any(c is None for c in counts):
        raise ValueError("FTGD's perplexity needs token counts, which only a torch model's scoring gives")
    n_tokens = sum(c for c in counts if c is not None)
    out = summarize(scores, n_tokens)
    if not tuning.text:
        return out
    perplexity = text_perplexity(ctx, tuning.text) if tuned else base_text_perplexity(ctx, tuning.text)
    return {**out, "perplexity": perplexity, "blimp_perplexity": out["perplexity"]}


def summarize(scores: dict[str, list[PairScore]], n_tokens: int) -> dict[str, Any]:
    """Per-task accuracy and mean margin, and perplexity on the good sentences of the scored pairs."""
    logp = sum(s.logp_good for ss in scores.values() for s in ss)
    return {
        "accuracy": {t: float(np.mean([s.margin > 0 for s in ss])) for t, ss in scores.items()},
        "margin": {t: float(np.mean([s.margin for s in ss])) for t, ss in scores.items()},
        "perplexity": math.exp(-logp / n_tokens),
    }


def probe_sentences(ctx: RunContext) -> list[str]:
    """The probe set: each task's first good test sentences."""
    return [p.good for d in ctx.data.values() for p in d.test[:PROBE_PER_TASK]]


def probe_delimiters(ctx: RunContext) -> list[str]:
    """What each probe sentence is read after: its task's delimiter, as in scoring."""
    return [task_delimiter(d.task) for d in ctx.data.values() for _ in d.test[:PROBE_PER_TASK]]


def probe_states(ctx: RunContext) -> np.ndarray:
    """Pooled states of the probe sentences, each after its task's delimiter (as CKA's untuned states are)."""
    return ctx.access.hidden_states(probe_sentences(ctx), delimiter=probe_delimiters(ctx))


def _store(ctx: RunContext, tuning: Tuning) -> UnitStore:
    return ctx.units(tuning.kind, **unit_settings(ctx, tuning))


def pending_sources(ctx: RunContext, tuning: Tuning) -> list[str]:
    """Source tasks whose tuned row (and, ``with_states``, probe states) is not stored yet."""
    store = _store(ctx, tuning)
    return [s for s in ctx.task_names if not store.has(s, ".json") or (tuning.with_states and not store.has(s, ".npy"))]


def tuned_row(ctx: RunContext, tuning: Tuning, source: str) -> dict[str, Any]:
    """Tune on ``source`` (FTGD on its mask, or every parameter), re-score every task, restore
    the model, and store the row: eval2 - eval1 per task (accuracy, margin), the perplexity
    change, and how tuning went. One unit of work."""
    store = _store(ctx, tuning)
    pairs = targets(ctx, tuning)
    base = evaluate(ctx, tuning, {t: ss[: len(pairs[t])] for t, ss in ctx.scores("test").items()}, tuned=False)
    mask = source_mask(ctx, tuning.mask, source, tuning.settings.seed)
    data = ctx.data[source]
    tuner = MaskedTuner(ctx.access.model, ctx.gradient_params, mask)
    try:
        report = tuner.tune(
            ctx.access, data.train, data.validation, tuning.settings, delimiter=task_delimiter(data.task)
        )
        tuned = report.best_step > 0
        after = (
            evaluate(ctx, tuning, ctx.score_pairs(pairs, desc=f"{tuning.kind}: eval2 after {source}"), tuned=True)
            if tuned
            else None
        )
        if tuning.with_states:
            store.save_array(source, probe_states(ctx))
        delta = tuner.delta() if tuned and mask is not None else None
    finally:
        tuner.restore()
    if mask is not None:  # the linear form reuses this tune: its update, stored as the linear form stores it
        text = (base["perplexity"], after["perplexity"] if after else None) if tuning.text else None
        save_update(ctx, tuning, source, report, mask, delta, text)
    row = {
        "tuned": tuned,
        "accuracy": {t: after["accuracy"][t] - base["accuracy"][t] if after else None for t in ctx.task_names},
        "margin": {t: after["margin"][t] - base["margin"][t] if after else None for t in ctx.task_names},
        "perplexity_on": tuning.perplexity_on,
        "perplexity_before": base["perplexity"],
        "perplexity_change": after["perplexity"] - base["perplexity"] if after else None,
        "steps": report.steps,
        "best_step": report.best_step,
        "validation_margins": report.validation_margins,
        "n_tuned": int(mask.size) if mask is not None else sum(p.numel() for _, p in ctx.gradient_params),
        "mask": tuning.mask,
        "n_targets": {t: len(ps) for t, ps in pairs.items()},
    }
    if tuning.text:
        row["blimp_perplexity_change"] = after["blimp_perplexity"] - base["blimp_perplexity"] if after else None
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


def stored_rows(ctx: RunContext, tuning: Tuning) -> dict[str, dict[str, Any]]:
    """The source rows stored so far (none computed): e.g. to read an unfinished run."""
    store = _store(ctx, tuning)
    return {s: store.load_json(s) for s in ctx.task_names if store.has(s, ".json")}


def tuned_states(ctx: RunContext, tuning: Tuning, source: str) -> np.ndarray:
    """The pooled probe-set states of the model tuned on ``source`` (``with_states`` rows)."""
    return _store(ctx, tuning).load_array(source)
