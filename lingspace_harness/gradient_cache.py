"""A run's gradient differentials, as stored units: one unit per task computes its training
split's differential once (and, with ``--split-half``, its two halves'), and each gradient
strategy stores its reduction of it. Functions of a :class:`RunContext` (the run or a variant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from .capabilities import ReducesOnDevice
from .options import options_record
from .protocols import RunContext
from .tasks import task_delimiter
from .units import UnitStore

#: Data variants of a run: the two halves of each task's training pairs (noise ceiling).
VARIANTS = ("half-a", "half-b")

T = TypeVar("T")


def halves(pairs: Sequence[T]) -> tuple[list[T], list[T]]:
    """The first and second half of a (seeded, shuffled) training split."""
    return list(pairs[: len(pairs) // 2]), list(pairs[len(pairs) // 2 :])


class Buffers:
    """Float32 vectors for gradient differentials, kept between gradient units (new memory
    costs page faults: ~0.3 s per SmolLM2 differential)."""

    def __init__(self) -> None:
        self._vectors: list[np.ndarray] = []

    def get(self, n: int, size: int) -> list[np.ndarray]:
        """``n`` vectors of ``size`` entries (their contents are not cleared)."""
        if len(self._vectors) < n or self._vectors[0].size != size:
            self._vectors = [np.empty(size, dtype=np.float32) for _ in range(max(n, len(self._vectors)))]
        return self._vectors[:n]

    def release(self) -> None:
        """Free the vectors (when a run's gradient units are done)."""
        self._vectors = []


def runs_of(run: RunContext) -> list[RunContext]:
    """The run, then its split halves if ``--split-half`` asked for them."""
    return [run] + ([run.for_variant(v) for v in VARIANTS] if run.config.split_half else [])


def gradient_store(run: RunContext, strategy: str) -> UnitStore:
    """Where ``strategy``'s reductions of this run's (or variant's) differentials are stored."""
    return run.units(
        f"gradient-{strategy}",
        split="train",
        include_embeddings=run.config.include_embeddings,
        options=options_record(run.options(strategy)),
    )


def pending_gradients(run: RunContext, strategies: list[str]) -> list[str]:
    """Tasks whose differential is not stored yet for some of ``strategies``, here or, for the
    run itself with ``--split-half``, in one of its halves (the run's own unit computes them:
    see ``compute_gradient``)."""
    runs = [run] if run.variant else runs_of(run)
    return [t for t in run.data if any(not gradient_store(r, s).has(t, ".npy") for r in runs for s in strategies)]


def compute_gradient(run: RunContext, task: str, strategies: list[str], buffers: Buffers) -> None:
    """One unit: a task's training-split differential, reduced and stored by each strategy.

    Each training pair's gradient is computed once: the run's differential is the sum of its
    two halves' (``halves``), which with ``--split-half`` are stored as the halves'
    differentials too. A half's own run computes its pairs alone, with the same batches."""
    names = list(dict.fromkeys(strategies))
    train = run.data[task].train
    size = run.gradient_layout.size
    delimiter = task_delimiter(run.data[task].task)
    device = on_device(run)
    if run.variant:
        (grad,) = run.access.gradient_differentials(
            [train], run.gradient_params, delimiter=delimiter, **_into(buffers, 1, size, device)
        )
        store_reductions(run, task, grad, names)
        return
    total, second = run.access.gradient_differentials(
        halves(train), run.gradient_params, delimiter=delimiter, **_into(buffers, 2, size, device)
    )
    if run.config.split_half:
        store_reductions(run.for_variant(VARIANTS[0]), task, total, names)
        store_reductions(run.for_variant(VARIANTS[1]), task, second, names)
    total += second  # in place: the first half's vector becomes the whole differential
    store_reductions(run, task, total, names)


def on_device(run: RunContext) -> bool:
    """Whether differentials stay on the model's device (not the CPU) to be reduced there."""
    return any(p.device.type != "cpu" for _, p in run.gradient_params[:1])


def _into(buffers: Buffers, n: int, size: int, device: bool) -> dict[str, Any]:
    """Where ``gradient_differentials`` puts its vectors: reused host buffers, or new device tensors."""
    return {"on_device": True} if device else {"out": buffers.get(n, size)}


def store_reductions(run: RunContext, task: str, grad: Any, strategies: list[str]) -> None:
    """Each strategy's reduction of ``grad`` (a host vector, or a tensor on the model's device),
    where it is not stored yet. On a device, a strategy with ``reduce_tensor`` reduces it there;
    the others get the vector copied to the host once."""
    host: np.ndarray | None = grad if isinstance(grad, np.ndarray) else None
    for name in strategies:
        store = gradient_store(run, name)
        if store.has(task, ".npy"):
            continue
        strategy = run.harness.gradient_strategies.get(name)
        layout, options = run.gradient_layout, run.options(name)
        if host is None and isinstance(strategy, ReducesOnDevice):
            store.save_array(task, np.asarray(strategy.reduce_tensor(grad, layout, options)))
            continue
        if host is None:
            host = grad.cpu().numpy()
        store.save_array(task, strategy.reduce(host, layout, options))


def stored_gradient(run: RunContext, strategy: str, task: str, buffers: Buffers) -> np.ndarray:
    """A task's stored reduction (memory-mapped); computes it if missing."""
    store = gradient_store(run, strategy)
    if not store.has(task, ".npy"):
        compute_gradient(run, task, [strategy], buffers)
    return store.load_array(task)
