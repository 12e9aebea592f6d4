"""Similarity probing metrics: ``transfer`` (FTGD-tune on each source task, re-score every task)
and ``lookahead`` (its cheap estimate from a few FTGD steps without early stopping)."""
from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import MetricResult, RunContext, Space, Unit, hookimpl, pending_sources, tuned_row, tuned_rows


def rows_to_space(tasks: list[str], rows: dict[str, dict[str, Any]], key: str) -> list[list[float]]:
    return [[rows[s][key][t] for t in tasks] for s in tasks]


def normalised(matrix: list[list[float]]) -> list[list[float | None]]:
    """Each row divided by its diagonal; the whole row None (undefined) where tuning did not
    improve its own task (a diagonal <= 0, or undefined), since the ratio then means nothing."""
    return [[v / row[i] if row[i] is not None and row[i] > 0 else None for v in row]
            for i, row in enumerate(matrix)]


def movement(matrix: list[list[float]]) -> dict[str, float | None]:
    """How far tuning moved its own task (diagonal) against the others (off-diagonal)."""
    m = np.array(matrix)
    off = m[~np.eye(len(m), dtype=bool)]
    return {"target": float(np.mean(np.diag(m))), "collateral_abs": float(np.mean(np.abs(off))) if off.size else None}


def tuning_extra(tasks: list[str], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    margin = rows_to_space(tasks, rows, "margin")
    return {"accuracy": rows_to_space(tasks, rows, "accuracy"), "normalised": normalised(margin),
            "perplexity_before": rows[tasks[0]]["perplexity_before"],
            "perplexity_change": [rows[s]["perplexity_change"] for s in tasks],
            "steps": [rows[s]["steps"] for s in tasks], "n_tuned": [rows[s]["n_tuned"] for s in tasks]}


class Transfer:
    name = "transfer"
    description = "FTGD-tune on each source task's top-k mask, re-score every task: eval2 - eval1 (margin)"

    def strategies(self, ctx: RunContext) -> list[str]:
        return ["topk"]

    def options(self, ctx: RunContext) -> dict[str, Any]:
        return {"with_states": "cka" in ctx.config.metrics}

    def units(self, ctx: RunContext) -> list[Unit]:
        units = [Unit(1, "transfer", s, self.name) for s in pending_sources(ctx, "transfer", **self.options(ctx))]
        if ctx.config.transfer_baseline:
            units += [Unit(1, "transfer-baseline", s, self.name)
                      for s in pending_sources(ctx, "transfer-baseline", masked=False)]
        return units

    def run_unit(self, ctx: RunContext, unit: Unit) -> None:
        if unit.kind == "transfer-baseline":
            tuned_row(ctx, unit.kind, unit.name, masked=False)
        else:
            tuned_row(ctx, unit.kind, unit.name, **self.options(ctx))

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        rows = tuned_rows(ctx, "transfer", **self.options(ctx))
        margin = rows_to_space(tasks, rows, "margin")
        extra: dict[str, Any] = {"variant": "margin", **tuning_extra(tasks, rows)}
        if ctx.config.transfer_baseline:
            full = tuned_rows(ctx, "transfer-baseline", masked=False)
            full_margin = rows_to_space(tasks, full, "margin")
            extra["baseline"] = {**tuning_extra(tasks, full), "margin": full_margin,
                                 "summary": {"ftgd": movement(margin), "full": movement(full_margin)}}
        return MetricResult(space=Space(tasks, margin, extra))


class Lookahead:
    name = "lookahead"
    description = "cheap transfer estimate: margin change on every task after a few FTGD steps on each source"

    def strategies(self, ctx: RunContext) -> list[str]:
        return ["topk"]

    def options(self, ctx: RunContext) -> dict[str, Any]:
        return {"steps": ctx.config.lookahead_steps, "early_stopping": False}

    def units(self, ctx: RunContext) -> list[Unit]:
        return [Unit(1, "lookahead", s, self.name) for s in pending_sources(ctx, "lookahead", **self.options(ctx))]

    def run_unit(self, ctx: RunContext, unit: Unit) -> None:
        tuned_row(ctx, "lookahead", unit.name, **self.options(ctx))

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        rows = tuned_rows(ctx, "lookahead", **self.options(ctx))
        margin = rows_to_space(tasks, rows, "margin")
        return MetricResult(space=Space(tasks, margin, {"variant": "margin", **tuning_extra(tasks, rows)}))


@hookimpl
def lingspace_register_metrics(register):
    register(Transfer())
    register(Lookahead())
