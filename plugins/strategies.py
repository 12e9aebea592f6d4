"""Gradient-differential strategies: ``full``, ``topk`` (the FTGD mask) and ``projected``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lingspace_harness import ParamLayout, UserError, hookimpl
from lingspace_harness.selection import largest_magnitudes, largest_magnitudes_tensor

#: Entries per step of the projection (the plan's codes and the gradient's values stay in cache).
CHUNK = 1 << 16


@dataclass(frozen=True)
class FullOptions:
    gradient_dtype: str = "float32"


class Full:
    name = "full"
    description = "the whole differential over the selected parameters (non-embedding by default)"
    kind = "vector"
    Options = FullOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument(
            "--gradient-dtype",
            choices=["float32", "float16"],
            help="storage of full differentials on disk (default float32)",
        )

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: FullOptions) -> np.ndarray:
        return grad.astype(options.gradient_dtype, copy=False)

    def layer_slices(self, layout: ParamLayout, options: FullOptions) -> dict[str, list[tuple[int, int]]]:
        return layout.layers()


@dataclass(frozen=True)
class TopKOptions:
    topk: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.topk <= 1:
            raise UserError(f"--topk must be in (0, 1], got {self.topk}")


class TopK:
    name = "topk"
    description = "indices of the top-k fraction of |differential| over all parameters together (FTGD mask)"
    kind = "mask"
    provides = ("mask",)
    Options = TopKOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--topk", type=float, help="fraction of parameters in the mask (default 0.01)")

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: TopKOptions) -> np.ndarray:
        return largest_magnitudes(grad, max(1, int(round(options.topk * grad.size))))

    def reduce_tensor(self, grad: Any, layout: ParamLayout, options: TopKOptions) -> np.ndarray:
        """``reduce`` on the model's device: the same indices."""
        return largest_magnitudes_tensor(grad, max(1, int(round(options.topk * grad.numel()))))


@dataclass(frozen=True)
class ProjectedOptions:
    projection_dim: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.projection_dim < 1:
            raise UserError(f"--projection-dim must be at least 1, got {self.projection_dim}")


class Projected:
    name = "projected"
    description = "a seeded count-sketch projection of each parameter tensor to --projection-dim values"
    kind = "vector"
    Options = ProjectedOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--projection-dim", type=int, help="values per parameter tensor (default 2048)")

    def __init__(self) -> None:
        self._plans: dict[tuple, np.ndarray] = {}
        self._device_plans: dict[tuple, Any] = {}

    def _plan(self, layout: ParamLayout, dim: int, seed: int) -> np.ndarray:
        """Each entry's bucket, plus ``dim`` where its sign is -1, in the smallest unsigned type
        that holds ``2 * dim`` (uint16 up to dim 32768). The buckets and signs are those of
        ``default_rng([seed, tensor, dim])``: ``integers(0, dim, size)``, then ``choice([-1, 1], size)``,
        drawn in chunks (the same stream). Built once per layout, dimension and seed."""
        key = (layout, dim, seed)
        if key not in self._plans:
            codes: np.ndarray = np.empty(layout.size, dtype=np.uint16 if 2 * dim <= 1 << 16 else np.uint32)
            offsets = layout.offsets
            for i, size in enumerate(layout.sizes):
                rng = np.random.default_rng([seed, i, dim])
                piece = codes[offsets[i] : offsets[i + 1]]
                for lo in range(0, size, CHUNK * 16):
                    piece[lo : lo + CHUNK * 16] = rng.integers(0, dim, size=min(CHUNK * 16, size - lo))
                for lo in range(0, size, CHUNK * 16):
                    negative = rng.integers(0, 2, size=min(CHUNK * 16, size - lo)) == 0  # choice's index 0: -1
                    piece[lo : lo + CHUNK * 16] += negative.astype(codes.dtype) * dim
            self._plans = {key: codes}  # one layout at a time
        return self._plans[key]

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: ProjectedOptions) -> np.ndarray:
        """Per tensor, the signed sums of its entries in each bucket (float64 sums, then float32)."""
        dim = options.projection_dim
        codes = self._plan(layout, dim, options.seed)
        out = np.zeros(len(layout.sizes) * dim, dtype=np.float64)
        offsets = layout.offsets
        for i in range(len(layout.sizes)):
            sums = np.zeros(2 * dim)
            for lo in range(offsets[i], offsets[i + 1], CHUNK):
                hi = min(offsets[i + 1], lo + CHUNK)
                sums += np.bincount(codes[lo:hi], weights=grad[lo:hi], minlength=2 * dim)
            out[i * dim : (i + 1) * dim] = sums[:dim] - sums[dim:]
        return out.astype(np.float32)

    def _device_plan(self, layout: ParamLayout, dim: int, seed: int, device: Any) -> Any:
        """``_plan``'s codes as an int32 tensor on ``device``, copied there once."""
        import torch

        key = (layout, dim, seed, str(device))
        if key not in self._device_plans:
            codes = self._plan(layout, dim, seed)
            self._device_plans = {key: torch.from_numpy(codes.astype(np.int32)).to(device)}
        return self._device_plans[key]

    def reduce_tensor(self, grad: Any, layout: ParamLayout, options: ProjectedOptions) -> np.ndarray:
        """``reduce`` on the model's device (float64 sums there too); only the sketch crosses to
        the host. Equal to ``reduce`` up to the order of the float64 sums."""
        import torch

        dim = options.projection_dim
        codes = self._device_plan(layout, dim, options.seed, grad.device)
        out = torch.zeros(len(layout.sizes) * dim, dtype=torch.float64, device=grad.device)
        offsets = layout.offsets
        for i in range(len(layout.sizes)):
            lo, hi = offsets[i], offsets[i + 1]
            sums = torch.zeros(2 * dim, dtype=torch.float64, device=grad.device)
            sums.index_add_(0, codes[lo:hi].long(), grad[lo:hi].double())
            out[i * dim : (i + 1) * dim] = sums[:dim] - sums[dim:]
        return out.float().cpu().numpy()

    def layer_slices(self, layout: ParamLayout, options: ProjectedOptions) -> dict[str, list[tuple[int, int]]]:
        dim = options.projection_dim
        out: dict[str, list[tuple[int, int]]] = {}
        for i, name in enumerate(layout.names):
            out.setdefault(layout.layer_of(name), []).append((i * dim, (i + 1) * dim))
        return out


@hookimpl
def lingspace_register_gradient_strategies(register):
    register(Full())
    register(TopK())
    register(Projected())
