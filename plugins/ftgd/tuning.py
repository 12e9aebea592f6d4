"""What a tuning is (``Tuning``), what its units depend on, and where a tune's update is stored.

Both forms of a tuning metric tune each source the same way; the update Δθ on the source's mask
(tuned minus base values, float32, in sorted mask order) is stored under the linear form's source
unit (``update_store``), whichever form tuned it, so a linear space can reuse a re-scored run's tunes.
The sorted mask is stored beside it (``mask_unit``): a target unit reads it instead of recomputing
every source's mask (seconds for ``random``, minutes for ``magnitude``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lingspace_harness import RunContext, UnitStore

from .controls import BLIMP_GOOD_TEST, PerplexityText
from .tuner import FTGDSettings, TuneReport, sorted_unique

#: The capability whose gradient reduction is the FTGD mask.
MASK = "mask"


@dataclass(frozen=True)
class Tuning:
    """One way of tuning every source: the unit kind it is stored as, its settings, the mask
    kind (see ``controls``; ``full`` tunes every parameter), whether it keeps probe states,
    how many test pairs per target task are re-scored (None: all), and the general text the
    perplexity is measured on (None: the BLiMP good test sentences)."""

    kind: str
    settings: FTGDSettings
    mask: str = "topk"
    with_states: bool = False
    targets: int | None = None
    text: PerplexityText | None = None

    @property
    def masked(self) -> bool:
        return self.mask != "full"

    @property
    def perplexity_on(self) -> str:
        return self.text.label if self.text else BLIMP_GOOD_TEST


def targets(ctx: RunContext, tuning: Tuning) -> dict[str, list[Any]]:
    """The test pairs re-scored per target task: the first ``tuning.targets`` (None: all)."""
    return {t: list(d.test[: tuning.targets]) for t, d in ctx.data.items()}


def unit_settings(ctx: RunContext, tuning: Tuning) -> dict[str, Any]:
    """What a tuning's units depend on beside the run's unit key: the mask (kind, and the mask
    strategy with its options), the tasks, the FTGD settings, the re-scored targets and the text
    the perplexity is measured on."""
    mask: dict[str, Any] = {"kind": tuning.mask}
    if tuning.masked:
        strategy = ctx.provider(MASK).name
        options = ctx.options(strategy)
        mask.update(
            strategy=strategy, options=asdict(options) if hasattr(options, "__dataclass_fields__") else dict(options)
        )
    perplexity = {"on": tuning.perplexity_on, **({"sha256": tuning.text.sha256} if tuning.text else {})}
    return {
        "mask": mask,
        "tasks": ctx.task_names,
        "ftgd": asdict(tuning.settings),
        "targets": tuning.targets,
        "perplexity": perplexity,
    }


def update_kind(tuning: Tuning) -> str:
    """The unit kind of a tuning's stored updates (the linear form's source units)."""
    return f"{tuning.kind}-linear"


def update_store(ctx: RunContext, tuning: Tuning) -> UnitStore:
    """Where each source's update and tuning record are stored: keyed by what the tune depends on
    (the mask, tasks and FTGD settings; the general text where its perplexity is recorded), not
    by the re-scored targets."""
    settings = unit_settings(ctx, tuning)
    settings.pop("targets")
    if not tuning.text:
        settings.pop("perplexity")
    return ctx.units(update_kind(tuning), **settings)


def mask_unit(source: str) -> str:
    """The unit name of a source's stored sorted mask, beside its update."""
    return f"{source}.mask"


def save_update(
    ctx: RunContext,
    tuning: Tuning,
    source: str,
    report: TuneReport,
    mask: np.ndarray,
    delta: np.ndarray | None,
    perplexity: tuple[float, float | None] | None = None,
) -> None:
    """Store a source's update on its ``mask`` (None: early stopping kept the untuned model),
    the sorted mask beside it, and how the tune went; ``perplexity``: the general text's
    (before, after; after None when untuned), where ``tuning.text`` is given."""
    mask = sorted_unique(mask)
    mask_size = mask.size
    if delta is not None and delta.size != mask_size:
        raise ValueError(f"{source}: the update has {delta.size} entries for a mask of {mask_size}")
    store = update_store(ctx, tuning)
    if delta is not None:
        store.save_array(source, delta)
        store.save_array(mask_unit(source), mask.astype(np.int32) if mask[-1] < 2**31 else mask)
    before, after = perplexity if perplexity is not None else (None, None)
    record = {
        "tuned": report.best_step > 0,
        "steps": report.steps,
        "best_step": report.best_step,
        "validation_margins": report.validation_margins,
        "n_tuned": int(mask_size),
        "mask": tuning.mask,
        "perplexity_on": tuning.text.label if tuning.text else None,
        "perplexity_before": before,
        "perplexity_change": after - before if after is not None and before is not None else None,
        "update_norm": float(np.linalg.norm(delta.astype(np.float64))) if delta is not None else None,
    }
    store.save_json(source, record)
