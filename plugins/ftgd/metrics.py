"""Similarity probing metrics: ``transfer`` (FTGD-tune on each source task, re-score every task)
and ``lookahead`` (its cheap estimate from a few FTGD steps without early stopping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lingspace_harness import MetricResult, RunContext, RunPlan, Space, Unit, UserError
from lingspace_harness.config import RECORDED_WHEN_SET

from .calibration import PERPLEXITY_BOUND, flagged, relative_changes
from .controls import MASK_KINDS, PerplexityText, perplexity_text_argument, positive_int
from .linear import FORMS, TARGET_STAGE, linear_space, target_column, target_kind, tune_source
from .linear import pending_sources as linear_sources
from .linear import pending_targets as linear_targets
from .probing import (
    pending_sources,
    probe_delimiters,
    probe_sentences,
    tuned_row,
    tuned_rows,
    tuned_states,
)
from .tuner import FTGDSettings
from .tuning import MASK, Tuning, update_kind

#: The capability ``transfer`` provides: each source's tuned probe-set states (for ``cka``).
TUNED_STATES = "tuned-states"


def rows_to_space(tasks: list[str], rows: dict[str, dict[str, Any]], key: str) -> list[list[float]]:
    """Source x target matrix of a row field; NaN where it is undefined (an untuned source)."""
    return [[float("nan") if rows[s][key][t] is None else rows[s][key][t] for t in tasks] for s in tasks]


def normalised(matrix: list[list[float]]) -> list[list[float | None]]:
    """Each row divided by its diagonal; None where the diagonal is not positive (tuning did not
    improve its own task) or undefined."""
    return [[v / row[i] if row[i] > 0 and np.isfinite(v) else None for v in row] for i, row in enumerate(matrix)]


def movement(matrix: list[list[float]]) -> dict[str, float | None]:
    """How far tuning moved its own task (diagonal) against the others (off-diagonal)."""
    m = np.array(matrix, dtype=float)
    off = m[~np.eye(len(m), dtype=bool)]
    diag = np.diag(m)
    return {
        "target": float(np.nanmean(diag)) if np.isfinite(diag).any() else None,
        "collateral_abs": float(np.nanmean(np.abs(off))) if np.isfinite(off).any() else None,
    }


def targets_per_task(tasks: list[str], rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    """How many test pairs of each target task were re-scored (the same for every source)."""
    return {t: rows[tasks[0]]["n_targets"][t] for t in tasks}


def tuning_extra(tasks: list[str], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    margin = rows_to_space(tasks, rows, "margin")
    untuned = [s for s in tasks if not rows[s].get("tuned", True)]
    relative = relative_changes(rows[tasks[0]]["perplexity_before"], [rows[s]["perplexity_change"] for s in tasks])
    return {
        "accuracy": rows_to_space(tasks, rows, "accuracy"),
        "normalised": normalised(margin),
        "perplexity_on": rows[tasks[0]].get("perplexity_on"),
        "perplexity_before": rows[tasks[0]]["perplexity_before"],
        "perplexity_change": [rows[s]["perplexity_change"] for s in tasks],
        "perplexity_relative_change": relative,
        # FTGD's premise, checked per source: a tune that raised perplexity this much is damage, not targeted change
        "perplexity_flagged": {"bound": PERPLEXITY_BOUND, "sources": flagged(tasks, relative)},
        "steps": [rows[s]["steps"] for s in tasks],
        "n_tuned": [rows[s]["n_tuned"] for s in tasks],
        "tuned": [rows[s].get("tuned", True) for s in tasks],
        **(
            {"blimp_perplexity_change": [rows[s]["blimp_perplexity_change"] for s in tasks]}
            if "blimp_perplexity_change" in rows[tasks[0]]
            else {}
        ),
        **({"undefined": f"early stopping kept the untuned model for {', '.join(untuned)}"} if untuned else {}),
    }


def require_positive(**flags: float | None) -> None:
    """UserError for the first option (``ftgd_lr=...`` names ``--ftgd-lr``) that is set but not positive."""
    for name, value in flags.items():
        if value is not None and not value > 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check_form(name: str, value: str) -> None:
    if value not in FORMS:
        raise UserError(f"--{name.replace('_', '-')} must be one of {', '.join(FORMS)}, got {value!r}")


def form_argument(group: Any, flag: str, metric: str) -> None:
    group.add_argument(
        flag,
        choices=FORMS,
        help=f"rescored (default): re-score every task after each tune; linear: the first-order {metric} "
        "space, the update dotted with each target's margin gradient (no re-scoring; model work linear in tasks)",
    )


def linear_units(ctx: RunContext, tuning: Tuning, owner: str) -> list[Unit]:
    """The linear form's units: one tune per source (stage 1), one column per target (stage 2)."""
    return [Unit(1, update_kind(tuning), s, owner) for s in linear_sources(ctx, tuning)] + [
        Unit(TARGET_STAGE, target_kind(tuning), t, owner) for t in linear_targets(ctx, tuning)
    ]


def run_linear_unit(ctx: RunContext, tuning: Tuning, unit: Unit) -> None:
    (tune_source if unit.kind == update_kind(tuning) else target_column)(ctx, tuning, unit.name)


@dataclass(frozen=True)
class TransferOptions:
    ftgd_lr: float = 1e-4
    ftgd_steps: int = 40
    ftgd_batch: int = 16
    ftgd_eval_every: int = 5
    ftgd_patience: int = 2
    ftgd_mask: str = "topk"
    transfer_baseline: bool = False
    transfer_targets: int | None = None
    perplexity_text: str | None = None
    seed: int = 0
    transfer_form: str = field(default="rescored", metadata=RECORDED_WHEN_SET)

    def __post_init__(self) -> None:
        check_form("transfer_form", self.transfer_form)
        if self.transfer_form == "linear" and (self.ftgd_mask == "full" or self.transfer_baseline):
            raise UserError(
                "--transfer-form linear needs a sparse mask: not with --ftgd-mask full or --transfer-baseline"
            )
        require_positive(
            ftgd_lr=self.ftgd_lr,
            ftgd_steps=self.ftgd_steps,
            ftgd_batch=self.ftgd_batch,
            ftgd_eval_every=self.ftgd_eval_every,
            ftgd_patience=self.ftgd_patience,
            transfer_targets=self.transfer_targets,
        )
        if self.ftgd_mask not in MASK_KINDS:
            raise UserError(f"--ftgd-mask must be one of {', '.join(MASK_KINDS)}, got {self.ftgd_mask!r}")


class Transfer:
    name = "transfer"
    description = "FTGD-tune on each source task's mask, re-score every task: eval2 - eval1 (margin)"
    needs = (MASK,)
    provides = (TUNED_STATES,)
    Options = TransferOptions

    def add_arguments(self, group: Any) -> None:
        d = TransferOptions()
        group.add_argument("--ftgd-lr", type=float, help=f"Adam learning rate (default {d.ftgd_lr})")
        group.add_argument("--ftgd-steps", type=int, help=f"most steps per source task (default {d.ftgd_steps})")
        group.add_argument("--ftgd-batch", type=int, help=f"pairs per step (default {d.ftgd_batch})")
        group.add_argument("--ftgd-eval-every", type=int, help=f"validate every N steps (default {d.ftgd_eval_every})")
        group.add_argument(
            "--ftgd-patience",
            type=int,
            help=f"stop after N validations without improvement (default {d.ftgd_patience})",
        )
        group.add_argument(
            "--ftgd-mask",
            choices=MASK_KINDS,
            help="entries tuned: topk (the source's gradient mask, default), random (seeded, same "
            "size), magnitude (largest |θ|, same size), full (every entry)",
        )
        group.add_argument(
            "--transfer-baseline",
            action="store_true",
            default=None,
            help="also tune with the full gradient (--ftgd-mask full) beside the chosen mask "
            "(on the run's own data; not on --split-half's halves)",
        )
        group.add_argument(
            "--transfer-targets",
            type=positive_int,
            metavar="N",
            help="use only the first N test pairs of each target task (re-scored, or the linear form's "
            "gradient; default: all)",
        )
        group.add_argument(
            "--perplexity-text",
            type=perplexity_text_argument,
            metavar="FILE",
            help="measure each tuned model's perplexity change on this plain text (one passage a "
            "line; default: the BLiMP good test sentences; with --transfer-form linear: none)",
        )
        form_argument(group, "--transfer-form", "transfer")

    def strategies(self, ctx: RunPlan) -> list[str]:
        return [] if ctx.options(self.name).ftgd_mask == "full" else [ctx.provider(MASK).name]

    def tunings(self, ctx: RunContext) -> list[Tuning]:
        o = ctx.options(self.name)
        settings = FTGDSettings(
            lr=o.ftgd_lr,
            steps=o.ftgd_steps,
            batch=o.ftgd_batch,
            eval_every=o.ftgd_eval_every,
            patience=o.ftgd_patience,
            seed=o.seed,
        )
        text = PerplexityText.read(o.perplexity_text) if o.perplexity_text else None
        common = {"targets": o.transfer_targets, "text": text}
        out = [Tuning("transfer", settings, mask=o.ftgd_mask, with_states=ctx.needed(TUNED_STATES), **common)]
        # the baseline is the run's own: nothing reads a split-half variant's, so it is not tuned there
        if o.transfer_baseline and o.ftgd_mask != "full" and not ctx.variant:
            out.append(Tuning("transfer-baseline", settings, mask="full", **common))
        return out

    def linear(self, ctx: RunPlan) -> bool:
        return ctx.options(self.name).transfer_form == "linear"

    def units(self, ctx: RunContext) -> list[Unit]:
        if self.linear(ctx):
            if ctx.needed(TUNED_STATES):
                raise UserError(
                    "--transfer-form linear keeps no tuned model states: cka needs --transfer-form rescored"
                )
            return linear_units(ctx, self.tunings(ctx)[0], self.name)
        return [Unit(1, t.kind, s, self.name) for t in self.tunings(ctx) for s in pending_sources(ctx, t)]

    def run_unit(self, ctx: RunContext, unit: Unit) -> None:
        if self.linear(ctx):
            run_linear_unit(ctx, self.tunings(ctx)[0], unit)
            return
        tuned_row(ctx, next(t for t in self.tunings(ctx) if t.kind == unit.kind), unit.name)

    def tuned_rows(self, ctx: RunContext) -> dict[str, dict[str, Any]]:
        return tuned_rows(ctx, self.tunings(ctx)[0])

    def probe_sentences(self, ctx: RunContext) -> list[str]:
        """The probe set the tuned states are taken on (``tuned-states`` capability)."""
        return probe_sentences(ctx)

    def probe_delimiters(self, ctx: RunContext) -> list[str]:
        """What each probe sentence is read after (its task's delimiter; ``tuned-states``)."""
        return probe_delimiters(ctx)

    def tuned_states(self, ctx: RunContext, source: str) -> np.ndarray:
        """The probe-set states after tuning on ``source`` (the ``tuned-states`` capability)."""
        return tuned_states(ctx, self.tunings(ctx)[0], source)

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        tunings = self.tunings(ctx)
        if self.linear(ctx):
            matrix, linear_extra = linear_space(ctx, tunings[0])
            text = tunings[0].text
            if text:
                linear_extra["perplexity_text"] = {"file": text.name, "sha256": text.sha256}
            return MetricResult(space=Space(tasks, matrix, {**linear_extra, "normalised": normalised(matrix)}))
        rows = tuned_rows(ctx, tunings[0])
        margin = rows_to_space(tasks, rows, "margin")
        extra: dict[str, Any] = {
            "form": "rescored",
            "variant": "margin",
            "mask": tunings[0].mask,
            **tuning_extra(tasks, rows),
            "targets_per_task": targets_per_task(tasks, rows),
        }
        if tunings[0].text:
            extra["perplexity_text"] = {"file": tunings[0].text.name, "sha256": tunings[0].text.sha256}
        if len(tunings) > 1:
            full = tuned_rows(ctx, tunings[1])
            full_margin = rows_to_space(tasks, full, "margin")
            extra["baseline"] = {
                **tuning_extra(tasks, full),
                "margin": full_margin,
                "summary": {"ftgd": movement(margin), "full": movement(full_margin)},
            }
        return MetricResult(space=Space(tasks, margin, extra))


@dataclass(frozen=True)
class LookaheadOptions:
    lookahead_steps: int = 3
    lookahead_lr: float = 1e-4
    lookahead_batch: int = 16
    lookahead_targets: int | None = None
    seed: int = 0
    lookahead_form: str = field(default="rescored", metadata=RECORDED_WHEN_SET)

    def __post_init__(self) -> None:
        check_form("lookahead_form", self.lookahead_form)
        require_positive(
            lookahead_steps=self.lookahead_steps,
            lookahead_lr=self.lookahead_lr,
            lookahead_batch=self.lookahead_batch,
            lookahead_targets=self.lookahead_targets,
        )


class Lookahead:
    name = "lookahead"
    description = "cheap transfer estimate: margin change on every task after a few FTGD steps on each source"
    needs = (MASK,)
    Options = LookaheadOptions

    def add_arguments(self, group: Any) -> None:
        d = LookaheadOptions()
        group.add_argument("--lookahead-steps", type=int, help=f"FTGD steps per source (default {d.lookahead_steps})")
        group.add_argument("--lookahead-lr", type=float, help=f"Adam learning rate (default {d.lookahead_lr})")
        group.add_argument("--lookahead-batch", type=int, help=f"pairs per step (default {d.lookahead_batch})")
        group.add_argument(
            "--lookahead-targets",
            type=positive_int,
            metavar="N",
            help="use only the first N test pairs of each target task (re-scored, or the linear form's "
            "gradient; default: all)",
        )
        form_argument(group, "--lookahead-form", "lookahead")

    def strategies(self, ctx: RunPlan) -> list[str]:
        return [ctx.provider(MASK).name]

    def linear(self, ctx: RunPlan) -> bool:
        return ctx.options(self.name).lookahead_form == "linear"

    def tuning(self, ctx: RunContext) -> Tuning:
        o = ctx.options(self.name)
        return Tuning(
            "lookahead",
            FTGDSettings(
                lr=o.lookahead_lr, steps=o.lookahead_steps, batch=o.lookahead_batch, early_stopping=False, seed=o.seed
            ),
            targets=o.lookahead_targets,
        )

    def units(self, ctx: RunContext) -> list[Unit]:
        if self.linear(ctx):
            return linear_units(ctx, self.tuning(ctx), self.name)
        return [Unit(1, "lookahead", s, self.name) for s in pending_sources(ctx, self.tuning(ctx))]

    def run_unit(self, ctx: RunContext, unit: Unit) -> None:
        if self.linear(ctx):
            run_linear_unit(ctx, self.tuning(ctx), unit)
            return
        tuned_row(ctx, self.tuning(ctx), unit.name)

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        if self.linear(ctx):
            matrix, extra = linear_space(ctx, self.tuning(ctx))
            return MetricResult(space=Space(tasks, matrix, {**extra, "normalised": normalised(matrix)}))
        rows = tuned_rows(ctx, self.tuning(ctx))
        margin = rows_to_space(tasks, rows, "margin")
        return MetricResult(
            space=Space(
                tasks,
                margin,
                {
                    "form": "rescored",
                    "variant": "margin",
                    **tuning_extra(tasks, rows),
                    "targets_per_task": targets_per_task(tasks, rows),
                },
            )
        )
