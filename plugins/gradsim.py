"""Task spaces from gradient differentials: ``gradsim`` (cosine) and ``overlap`` (mask Jaccard)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from lingspace_harness import HasLayerSlices, MetricResult, ParamLayout, RunContext, RunPlan, Space, UserError, hookimpl

from .overlap_null import HALVES, mask_shares, stratified_null

#: What overlap compares: a gradient strategy's per-task mask (sorted flat indices).
MASK = "mask"

#: Gram matrices are accumulated over slices of at most this many parameters.
BLOCK = 1 << 20
#: Jaccard indices are counted over blocks of this many parameter indices (2 MiB per mask's bitset).
BITS = 1 << 24


def read_block(vector: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``vector[lo:hi]`` as float64. A memory-mapped vector is read with plain file reads, so the
    pages of N stored differentials never pile up in the process's memory."""
    if isinstance(vector, np.memmap) and vector.filename:
        with open(vector.filename, "rb") as handle:
            handle.seek(vector.offset + lo * vector.itemsize)
            return np.fromfile(handle, dtype=vector.dtype, count=hi - lo).astype(np.float64)
    return np.asarray(vector[lo:hi], dtype=np.float64)


def gram_by_layer(vectors: list[np.ndarray], slices: dict[str, list[tuple[int, int]]]) -> dict[str, np.ndarray]:
    """Per layer, the N x N matrix of inner products, streamed block by block (float64)."""
    n = len(vectors)
    grams = {}
    for layer, parts in slices.items():
        gram = np.zeros((n, n))
        for start, end in parts:
            for lo in range(start, end, BLOCK):
                hi = min(end, lo + BLOCK)
                block = np.stack([read_block(v, lo, hi) for v in vectors])
                gram += block @ block.T
        grams[layer] = gram
    return grams


def cosine(gram: np.ndarray) -> np.ndarray:
    """Cosines from a Gram matrix; NaN (undefined) in the rows and columns of zero vectors."""
    norms = np.sqrt(np.clip(np.diag(gram), 0, None))
    outer = np.outer(norms, norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(outer > 0, gram / np.where(outer > 0, outer, 1.0), np.nan)


def zero_reason(tasks: list[str], gram: np.ndarray, what: str = "zero gradient differential") -> str | None:
    """Why cosines are undefined: the tasks whose vector is zero (None if none is)."""
    zero = [t for t, v in zip(tasks, np.diag(gram)) if not v > 0]
    return f"{what} for task{'s' if len(zero) > 1 else ''} {', '.join(zero)}" if zero else None


def centred_cosine(gram: np.ndarray) -> np.ndarray:
    """Cosines after subtracting the mean vector over tasks: H G H with H = I - 11'/N."""
    n = len(gram)
    h = np.eye(n) - np.full((n, n), 1.0 / n)
    return cosine(h @ gram @ h)


def jaccard(masks: list[np.ndarray]) -> np.ndarray:
    """Jaccard index of sorted index masks (unique non-negative indices); NaN (undefined)
    between two empty masks. The index range is walked in blocks of ``BITS`` entries: there each
    mask's slice becomes a bitset, so an intersection is an AND and a popcount, not a sort of
    both masks, and only one block's bitsets are held at a time."""
    n = len(masks)
    out = np.diag([1.0 if m.size else np.nan for m in masks])
    size = max((int(m[-1]) + 1 for m in masks if m.size), default=0)
    inter = np.zeros((n, n), dtype=np.int64)
    for lo in range(0, size, BITS):
        bitsets = []
        for m in masks:
            start, end = np.searchsorted(m, [lo, lo + BITS])
            bits = np.zeros(BITS, dtype=bool)
            bits[np.asarray(m[start:end]) - lo] = True
            bitsets.append(np.packbits(bits).view(np.uint64))
        for i in range(n):
            for j in range(i + 1, n):
                inter[i, j] += int(np.bitwise_count(bitsets[i] & bitsets[j]).sum(dtype=np.int64))
    for i in range(n):
        for j in range(i + 1, n):
            union = masks[i].size + masks[j].size - inter[i, j]
            out[i, j] = out[j, i] = inter[i, j] / union if union else np.nan  # two empty masks: undefined
    return out


@dataclass(frozen=True)
class GradSimOptions:
    gradsim_strategy: str = "projected"


class GradSim:
    name = "gradsim"
    description = "cosine of gradient differentials (raw and task-mean-centred, also per layer)"
    Options = GradSimOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument(
            "--gradsim-strategy",
            help="the gradient strategy whose vectors gradsim compares: projected (default; "
            "a count-sketch, a few MB per task) or full (the whole differential on disk)",
        )

    def strategies(self, ctx: RunPlan) -> list[str]:
        return [self._strategy(ctx)[0]]

    def _strategy(self, ctx: RunPlan) -> tuple[str, HasLayerSlices]:
        """The strategy gradsim compares (its name, and it), checked before anything loads."""
        name = ctx.options(self.name).gradsim_strategy
        if name not in ctx.harness.gradient_strategies:
            known = ", ".join(s.name for s in ctx.harness.gradient_strategies if isinstance(s, HasLayerSlices))
            raise UserError(f"--gradsim-strategy {name}: no such gradient strategy; gradsim can compare {known}")
        strategy = ctx.harness.gradient_strategies.get(name)
        if not isinstance(strategy, HasLayerSlices):
            raise UserError(f"--gradsim-strategy {name}: gradsim needs a vector strategy with layer_slices()")
        return name, strategy

    def compute(self, ctx: RunContext) -> MetricResult:
        name, strategy = self._strategy(ctx)
        tasks = ctx.task_names
        vectors = [ctx.gradient(name, t) for t in tasks]
        grams = gram_by_layer(vectors, strategy.layer_slices(ctx.gradient_layout, ctx.options(name)))
        total = reduce(operator.add, grams.values())  # in layer order, as sum() would
        n_train = np.array([len(ctx.data[t].train) for t in tasks], dtype=float)
        return MetricResult(
            space=Space(
                tasks,
                cosine(total).tolist(),
                {
                    "undefined": zero_reason(tasks, total),
                    "strategy": name,
                    "centred": centred_cosine(total).tolist(),
                    "per_layer": {layer: cosine(g).tolist() for layer, g in grams.items()},
                    "norm_sum": np.sqrt(np.diag(total)).tolist(),
                    "norm_mean": (np.sqrt(np.diag(total)) / n_train).tolist(),
                },
            )
        )


class Overlap:
    name = "overlap"
    description = "parameter sharing: Jaccard index of the tasks' top-k FTGD masks, with its stratified null"

    needs = (MASK,)

    def strategies(self, ctx: RunPlan) -> list[str]:
        return [ctx.provider(MASK).name]

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        masks = [np.asarray(ctx.gradient(ctx.provider(MASK).name, t)) for t in tasks]
        layout = ctx.gradient_layout
        k = float(np.mean([m.size for m in masks])) / layout.size
        empty = [t for t, m in zip(tasks, masks) if not m.size]
        reason = f"empty mask for {', '.join(empty)}" if empty else None
        observed = jaccard(masks)
        null = stratified_null(masks, layout)
        if not ctx.variant and ctx.config.split_half:  # the halves' own nulls (their Jaccards are the runner's)
            null["split_half"] = {h[-1]: self._half_null(ctx.for_variant(h), layout) for h in HALVES}
        extra = {"k": k, "chance": k / (2 - k), "undefined": reason, "null": null}
        extra |= {"excess": observed - null["matrix"], "mask_shares": mask_shares(masks, layout)}
        return MetricResult(space=Space(tasks, observed.tolist(), extra))

    def _half_null(self, ctx: RunContext, layout: ParamLayout) -> dict[str, Any]:
        """A split half's stratified null (``chance`` and ``matrix``), from its own masks."""
        null = stratified_null([np.asarray(ctx.gradient(ctx.provider(MASK).name, t)) for t in ctx.task_names], layout)
        return {"chance": null["chance"], "matrix": null["matrix"]}


@hookimpl
def lingspace_register_metrics(register):
    register(GradSim())
    register(Overlap())
