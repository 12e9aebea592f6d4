"""Linear forms of transfer and lookahead: a space without re-scoring.

The re-scored cell is the change of the target's mean test margin after tuning on the source,
m_t(θ + Δθ_s) − m_t(θ). Its first-order form is the inner product of the source's update Δθ_s
(nonzero on its mask only) with the gradient of the target's mean margin over the same test
pairs, T[s, t] = Δθ_s · ∇θ m_t: the same units, the diagonal included. The model work is linear
in the number of tasks:

- stage 1, one unit per source: tune exactly as the re-scored form does (same mask, settings,
  seed, batches and early stopping), store Δθ_s on the mask (float32, in sorted mask order) and
  restore the model. A source that early stopping left untuned stores no update: its row is
  undefined. No task is re-scored (the general-text perplexity change is measured where
  ``--perplexity-text`` is given).
- stage 2, one unit per target (``GATHER_STAGE``: it reads every source's update): one backward
  pass over the target's test pairs (summed exactly, through the prefix trees) gives Σ ∇ margin;
  the target's column is each stored Δθ_s dotted with it at the source's mask, divided by the
  number of pairs. The run's own unit also fills its split halves' columns (their test pairs are
  the run's), so the gradient is computed once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import RunContext, UnitStore
from lingspace_harness.tasks import task_delimiter

from .calibration import PERPLEXITY_BOUND, flagged, relative_changes
from .controls import source_mask
from .probing import base_text_perplexity, text_perplexity
from .tuner import MaskedTuner, sorted_unique
from .tuning import Tuning, mask_unit, save_update, targets, unit_settings, update_store

#: The forms a tuning metric's space can take.
FORMS = ("rescored", "linear")
#: The stage of the target units: they read every source's stored update.
TARGET_STAGE = 2
#: The split halves a run's own target unit fills too.
HALVES = ("half-a", "half-b")


def target_kind(tuning: Tuning) -> str:
    return f"{tuning.kind}-linear-target"


def target_store(ctx: RunContext, tuning: Tuning) -> UnitStore:
    settings = unit_settings(ctx, tuning)
    settings.pop("perplexity")
    return ctx.units(target_kind(tuning), **settings)


def sorted_mask(ctx: RunContext, tuning: Tuning, source: str) -> np.ndarray:
    """The source's mask as the tuner orders it (sorted, unique flat indices)."""
    mask = source_mask(ctx, tuning.mask, source, tuning.settings.seed)
    if mask is None:
        raise ValueError("the linear form needs a sparse mask (not --ftgd-mask full)")
    return sorted_unique(mask)


def stored_mask(store: UnitStore, ctx: RunContext, tuning: Tuning, source: str) -> np.ndarray:
    """The sorted mask stored beside the source's update in ``store`` (its ``update_store``),
    as int64, or, for an update stored without one, the mask recomputed."""
    if store.has(mask_unit(source), ".npy"):
        return np.asarray(store.load_array(mask_unit(source)), dtype=np.int64)
    return sorted_mask(ctx, tuning, source)


def linear_cell(delta: np.ndarray, grad: np.ndarray, mask: np.ndarray, n_pairs: int) -> float:
    """Δθ_s · ∇θ m_t: the update on its ``mask`` dotted with the target's summed margin gradient
    there (float64), divided by the target's ``n_pairs``: the mean margin's first-order change."""
    return float(np.dot(np.asarray(delta, dtype=np.float64), grad[mask])) / n_pairs


def runs_filled(ctx: RunContext) -> list[RunContext]:
    """The run's own target unit fills its split halves' columns too (their test pairs are its)."""
    return [ctx] + ([ctx.for_variant(h) for h in HALVES] if ctx.config.split_half and not ctx.variant else [])


def pending_sources(ctx: RunContext, tuning: Tuning) -> list[str]:
    store = update_store(ctx, tuning)
    return [s for s in ctx.task_names if not store.has(s, ".json")]


def pending_targets(ctx: RunContext, tuning: Tuning) -> list[str]:
    runs = runs_filled(ctx)
    return [t for t in ctx.task_names if any(not target_store(r, tuning).has(t, ".json") for r in runs)]


def tune_source(ctx: RunContext, tuning: Tuning, source: str) -> None:
    """One stage-1 unit: tune on ``source``, store Δθ on its mask, restore the model."""
    mask = sorted_mask(ctx, tuning, source)
    data = ctx.data[source]
    before = base_text_perplexity(ctx, tuning.text) if tuning.text else None
    tuner = MaskedTuner(ctx.access.model, ctx.gradient_params, mask)
    try:
        report = tuner.tune(
            ctx.access, data.train, data.validation, tuning.settings, delimiter=task_delimiter(data.task)
        )
        tuned = report.best_step > 0
        delta = tuner.delta() if tuned else None
        after = text_perplexity(ctx, tuning.text) if tuned and tuning.text else None
    finally:
        tuner.restore()
    save_update(ctx, tuning, source, report, mask, delta, None if before is None else (before, after))


def target_column(ctx: RunContext, tuning: Tuning, target: str) -> None:
    """One stage-2 unit: Σ ∇ margin over ``target``'s test pairs, dotted with every source's
    stored update at its mask (÷ pairs): the target's column, for the run and (its own unit) its halves."""
    runs = [r for r in runs_filled(ctx) if not target_store(r, tuning).has(target, ".json")]
    if not runs:
        return
    pairs = targets(ctx, tuning)[target]
    for r in runs[1:]:
        if [(p.good, p.bad) for p in targets(r, tuning)[target]] != [(p.good, p.bad) for p in pairs]:
            raise ValueError(f"{target}: the split halves' test pairs differ from the run's")
    delimiter = task_delimiter(ctx.data[target].task)
    (grad,) = ctx.access.gradient_differentials([pairs], ctx.gradient_params, delimiter=delimiter)
    grad = np.asarray(grad)
    for r in runs:
        sources = update_store(r, tuning)
        column: dict[str, float | None] = {}
        for s in r.task_names:
            if not sources.has(s, ".json"):
                raise ValueError(f"{target}'s column needs source {s}'s update, which is not stored (stage 1)")
            if not sources.load_json(s)["tuned"]:
                column[s] = None
                continue
            column[s] = linear_cell(sources.load_array(s), grad, stored_mask(sources, r, tuning, s), len(pairs))
        target_store(r, tuning).save_json(target, {"column": column, "n_pairs": len(pairs)})


def linear_space(ctx: RunContext, tuning: Tuning) -> tuple[list[list[float]], dict[str, Any]]:
    """The linear space (NaN rows for untuned sources) and what to record beside it; the units
    are computed where missing."""
    tasks = ctx.task_names
    for s in pending_sources(ctx, tuning):
        tune_source(ctx, tuning, s)
    for t in pending_targets(ctx, tuning):
        target_column(ctx, tuning, t)
    sources, columns = update_store(ctx, tuning), target_store(ctx, tuning)
    rows = {s: sources.load_json(s) for s in tasks}
    cols = {t: columns.load_json(t) for t in tasks}
    matrix = [[float("nan") if cols[t]["column"][s] is None else cols[t]["column"][s] for t in tasks] for s in tasks]
    untuned = [s for s in tasks if not rows[s]["tuned"]]
    changes = [rows[s]["perplexity_change"] for s in tasks]
    extra: dict[str, Any] = {
        "form": "linear",
        "variant": "margin",
        "mask": tuning.mask,
        "targets_per_task": {t: cols[t]["n_pairs"] for t in tasks},
        "steps": [rows[s]["steps"] for s in tasks],
        "n_tuned": [rows[s]["n_tuned"] for s in tasks],
        "tuned": [rows[s]["tuned"] for s in tasks],
        "update_norm": [rows[s]["update_norm"] for s in tasks],
        "perplexity_on": rows[tasks[0]]["perplexity_on"],
    }
    if tuning.text:
        relative = relative_changes(rows[tasks[0]]["perplexity_before"], changes)
        extra |= {
            "perplexity_before": rows[tasks[0]]["perplexity_before"],
            "perplexity_change": changes,
            "perplexity_relative_change": relative,
            "perplexity_flagged": {"bound": PERPLEXITY_BOUND, "sources": flagged(tasks, relative)},
        }
    if untuned:
        extra["undefined"] = f"early stopping kept the untuned model for {', '.join(untuned)}"
    return matrix, extra
