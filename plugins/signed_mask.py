"""The signed-mask probe: ``signmask``, P[s, t] = sum over i in M_s of sign(D_s[i]) * D_t[i] / n_t,
and the ``signed-sketch`` strategy it reads by default.

D_t is task t's summed gradient differential over its n_t training pairs and M_s the top-k
fraction of |D_s| (the FTGD mask). P[s, t] is the first-order change of t's mean margin after one
sign step on s's mask (Adam's first step is lr * sign(g)): rows are sources, columns targets, the
diagonal included; it is not symmetric. ``signed-sketch`` stores [R D ; R s], R the ``projected``
count-sketch and s = sign(D) * 1[M], so that P[s, t] ~ <(R s)_s, (R D)_t> / n_t; with ``full`` the
probe is exact, from the stored differentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lingspace_harness import MetricResult, ParamLayout, RunContext, RunPlan, Space, UserError, hookimpl
from lingspace_harness.selection import largest_magnitudes, largest_magnitudes_tensor

from .gradsim import read_block
from .strategies import Projected, ProjectedOptions

#: The strategy ``signed-sketch``, and the forms ``signmask`` can read.
SKETCH = "signed-sketch"
FORMS = (SKETCH, "full")
#: The strategy whose ``--topk`` is the mask's fraction in the exact (``full``) form.
TOPK = "topk"
#: Entries of every task's differential read together by the exact form (2 MiB of float64 each).
STEP = 1 << 18


def mask_size(fraction: float, size: int) -> int:
    """Entries in a top-k mask of ``fraction`` of ``size`` (rounded as the ``topk`` strategy does)."""
    return max(1, int(round(fraction * size)))


@dataclass(frozen=True)
class SignedSketchOptions:
    signed_topk: float = 0.01
    signed_projection_dim: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.signed_topk <= 1:
            raise UserError(f"--signed-topk must be in (0, 1], got {self.signed_topk}")
        if self.signed_projection_dim < 1:
            raise UserError(f"--signed-projection-dim must be at least 1, got {self.signed_projection_dim}")


class SignedSketch:
    """[R D ; R s]: ``projected``'s count-sketch R (same plan for the same dimension and seed)
    of the differential D and of its signed top-k mask s = sign(D) * 1[top-k of |D|]."""

    name = SKETCH
    description = (
        "the projected count-sketch of the differential and of its signed top-k mask, "
        "concatenated (what signmask reads)"
    )
    kind = "vector"
    Options = SignedSketchOptions

    def __init__(self) -> None:
        self._projected = Projected()  # its own plan cache: a run may also use ``projected`` at another dim

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--signed-topk", type=float, help="fraction of parameters in the signed mask (default 0.01)")
        group.add_argument(
            "--signed-projection-dim", type=int, help="sketch values per parameter tensor, each half (default 2048)"
        )

    @staticmethod
    def projection(options: SignedSketchOptions) -> ProjectedOptions:
        """The ``projected`` options whose sketch R this strategy applies."""
        return ProjectedOptions(projection_dim=options.signed_projection_dim, seed=options.seed)

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: SignedSketchOptions) -> np.ndarray:
        projection = self.projection(options)
        dense = self._projected.reduce(grad, layout, projection)
        index = largest_magnitudes(grad, mask_size(options.signed_topk, grad.size))
        return np.concatenate([dense, self.sketch_sparse(index, np.sign(grad[index]), layout, projection)])

    def reduce_tensor(self, grad: Any, layout: ParamLayout, options: SignedSketchOptions) -> np.ndarray:
        """``reduce`` on the model's device: R D and the mask there; only the k signs cross."""
        import torch

        projection = self.projection(options)
        dense = self._projected.reduce_tensor(grad, layout, projection)
        index = largest_magnitudes_tensor(grad, mask_size(options.signed_topk, grad.numel()))
        signs = torch.sign(grad[torch.from_numpy(index.astype(np.int64)).to(grad.device)]).cpu().numpy()
        return np.concatenate([dense, self.sketch_sparse(index, signs, layout, projection)])

    def sketch_sparse(
        self, index: np.ndarray, values: np.ndarray, layout: ParamLayout, projection: ProjectedOptions
    ) -> np.ndarray:
        """R x for x zero except ``x[index] = values`` (``index`` sorted): ``Projected.reduce`` of
        the dense x, binned over the k entries only (float64 sums, then float32)."""
        dim = projection.projection_dim
        codes = self._projected._plan(layout, dim, projection.seed)
        tensor = np.searchsorted(np.asarray(layout.offsets), index, side="right") - 1
        bins = tensor.astype(np.int64) * (2 * dim) + codes[index]
        count = len(layout.sizes)
        sums = np.bincount(bins, weights=np.asarray(values, dtype=np.float64), minlength=count * 2 * dim)
        sums = sums.reshape(count, 2 * dim)
        return (sums[:, :dim] - sums[:, dim:]).reshape(-1).astype(np.float32)

    def layer_slices(self, layout: ParamLayout, options: SignedSketchOptions) -> dict[str, list[tuple[int, int]]]:
        """Each layer's slices of the R D half (so gradsim over it is ``projected``'s cosine)."""
        return self._projected.layer_slices(layout, self.projection(options))


@dataclass(frozen=True)
class SignMaskOptions:
    signmask_strategy: str = SKETCH

    def __post_init__(self) -> None:
        if self.signmask_strategy not in FORMS:
            raise UserError(f"--signmask-strategy must be {' or '.join(FORMS)}, got {self.signmask_strategy!r}")


def masked_sums(vectors: list[np.ndarray], masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``out[s, t]`` = sum over ``masks[s]`` (sorted indices) of sign(vectors[s]) times
    ``vectors[t]`` there (float64), and each source's count of nonzero signs. The vectors are
    streamed together, ``STEP`` entries of each at a time (plain file reads of memory-mapped ones,
    as gradsim reads them), so no whole differential is ever held."""
    n = len(vectors)
    out, nonzero = np.zeros((n, n)), np.zeros(n, dtype=np.int64)
    size = vectors[0].size if vectors else 0
    for lo in range(0, size, STEP):
        hi = min(size, lo + STEP)
        block = np.stack([read_block(v, lo, hi) for v in vectors])
        for s, index in enumerate(masks):
            a, b = np.searchsorted(index, [lo, hi])
            values = block[:, np.asarray(index[a:b], dtype=np.int64) - lo]
            signs = np.sign(values[s])
            out[s] += values @ signs
            nonzero[s] += np.count_nonzero(signs)
    return out, nonzero


def exact_probe(ctx: RunContext, tasks: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Sums of the exact probe from the full differentials and the ``topk`` masks (the same
    selection, made on each float32 differential before it was stored), which tasks' are zero, and k."""
    vectors = [ctx.gradient("full", t) for t in tasks]
    sums, nonzero = masked_sums(vectors, [np.asarray(ctx.gradient(TOPK, t)) for t in tasks])
    return sums, nonzero == 0, float(ctx.options(TOPK).topk)  # the largest |D| is 0: D is 0


def sketch_probe(ctx: RunContext, tasks: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Sums of the sketched probe, <(R s)_s, (R D)_t> over all tensors, which tasks' D are zero, and k."""
    vectors = np.stack([np.asarray(ctx.gradient(SKETCH, t), dtype=np.float64) for t in tasks])
    half = vectors.shape[1] // 2
    dense, signed = vectors[:, :half], vectors[:, half:]
    zero = ~(np.any(dense != 0, axis=1) | np.any(signed != 0, axis=1))
    return signed @ dense.T, zero, float(ctx.options(SKETCH).signed_topk)


def undefined_reason(tasks: list[str], empty: np.ndarray, zero: np.ndarray) -> str | None:
    """Why rows and columns are undefined: tasks without training pairs or with a zero differential."""
    parts = [
        f"{what} for {', '.join(t for t, bad in zip(tasks, flags) if bad)}"
        for what, flags in (("no training pairs", empty), ("zero gradient differential", zero & ~empty))
        if flags.any()
    ]
    return "; ".join(parts) or None


class SignMask:
    name = "signmask"
    description = (
        "signed-mask probe: the target's differential summed over the source's mask, signed by the "
        "source (first-order transfer of one sign step)"
    )
    Options = SignMaskOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument(
            "--signmask-strategy",
            choices=list(FORMS),
            help="what signmask reads: signed-sketch (default; a count-sketch of D and of the signed "
            "mask, --signed-topk) or full (exact, from the whole differential on disk, with --topk)",
        )

    def strategies(self, ctx: RunPlan) -> list[str]:
        """``signed-sketch``; or ``full`` and ``topk`` (its masks, and a run records its ``--topk``)."""
        name = self._strategy(ctx)
        return [name] + ([TOPK] if name == "full" else [])

    def _strategy(self, ctx: RunPlan) -> str:
        """The strategy signmask reads, checked (with ``topk`` for the exact form) before anything loads."""
        name = ctx.options(self.name).signmask_strategy
        for needed in [name] + ([TOPK] if name == "full" else []):
            if needed not in ctx.harness.gradient_strategies:
                raise UserError(f"--signmask-strategy {name}: the gradient strategy {needed!r} is not registered")
        return name

    def compute(self, ctx: RunContext) -> MetricResult:
        name = self._strategy(ctx)
        tasks = ctx.task_names
        n_train = np.array([len(ctx.data[t].train) for t in tasks], dtype=float)
        sums, zero, fraction = (sketch_probe if name == SKETCH else exact_probe)(ctx, tasks)
        empty = n_train == 0
        matrix = sums / np.where(empty, 1.0, n_train)[None, :]
        matrix[empty | zero, :] = np.nan  # undefined, never 0
        matrix[:, empty | zero] = np.nan
        extra = {
            "form": "linear",
            "probe": "signed-mask",
            "strategy": name,
            "k": fraction,
            "n_train": n_train.astype(int).tolist(),
            "undefined": undefined_reason(tasks, empty, zero),
        }
        return MetricResult(space=Space(tasks, matrix.tolist(), extra))


@hookimpl
def lingspace_register_gradient_strategies(register):
    register(SignedSketch())


@hookimpl
def lingspace_register_metrics(register):
    register(SignMask())
