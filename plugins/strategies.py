"""Gradient-differential strategies: ``full``, ``topk`` (the FTGD mask) and ``projected``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lingspace_harness import ParamLayout, UserError, hookimpl


@dataclass(frozen=True)
class FullOptions:
    gradient_dtype: str = "float32"


class Full:
    name = "full"
    description = "the whole differential over the selected parameters (non-embedding by default)"
    kind = "vector"
    Options = FullOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--gradient-dtype", choices=["float32", "float16"],
                           help="storage of full differentials on disk (default float32)")

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: FullOptions) -> np.ndarray:
        return grad.astype(options.gradient_dtype, copy=False)

    def layer_slices(self, layout: ParamLayout, options: FullOptions) -> dict[str, list[tuple[int, int]]]:
        return layout.layers()


@dataclass(frozen=True)
class TopKOptions:
    topk: float = 0.01


class TopK:
    name = "topk"
    description = "indices of the top-k fraction of |differential| over all parameters together (FTGD mask)"
    kind = "mask"
    provides = ("mask",)
    Options = TopKOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--topk", type=float, help="fraction of parameters in the mask (default 0.01)")

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: TopKOptions) -> np.ndarray:
        if not 0 < options.topk <= 1:
            raise UserError(f"--topk must be in (0, 1], got {options.topk}")
        n = max(1, int(round(options.topk * grad.size)))
        chosen = np.argpartition(np.abs(grad), grad.size - n)[grad.size - n:]
        return np.sort(chosen).astype(np.int64)


@dataclass(frozen=True)
class ProjectedOptions:
    projection_dim: int = 1024
    seed: int = 0


class Projected:
    name = "projected"
    description = "a seeded count-sketch projection of each parameter tensor to --projection-dim values"
    kind = "vector"
    Options = ProjectedOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument("--projection-dim", type=int, help="values per parameter tensor (default 1024)")

    def __init__(self) -> None:
        self._plans: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}

    def _plan(self, layout: ParamLayout, dim: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        key = (layout, dim, seed)
        if key not in self._plans:
            plan = []
            for i, size in enumerate(layout.sizes):
                rng = np.random.default_rng([seed, i, dim])
                plan.append((rng.integers(0, dim, size=size), rng.choice(np.array([-1.0, 1.0], np.float32), size)))
            self._plans = {key: plan}  # one layout at a time
        return self._plans[key]

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: ProjectedOptions) -> np.ndarray:
        dim = options.projection_dim
        out = np.zeros(len(layout.sizes) * dim, dtype=np.float64)
        offsets = layout.offsets
        for i, (bucket, sign) in enumerate(self._plan(layout, dim, options.seed)):
            piece = grad[offsets[i]:offsets[i + 1]].astype(np.float64) * sign
            out[i * dim:(i + 1) * dim] = np.bincount(bucket, weights=piece, minlength=dim)
        return out.astype(np.float32)

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
