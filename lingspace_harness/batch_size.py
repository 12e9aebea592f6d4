"""``--batch-size``: sentences per forward pass, a number or ``auto``, and the pass bounds it sets.

The bounds of a pass (``scoring.LOGIT_BUDGET`` and ``SOFTMAX_ROWS``, ``gradients.GRADIENT_ROWS``,
a gradient pass's batch, ``GRADIENT_BATCH``) were measured on a 2-core CPU at the default 128
sentences per pass. ``scaled`` keeps them as they are at 128 sentences or fewer (a CPU run is
unchanged) and grows them in proportion above that. ``prefix_trees.TREE_NODES`` stays: it bounds
one tree's width, whose attention mask grows with its square; a larger batch packs more trees
into a pass instead.

``auto`` finds the largest batch whose passes fit on an accelerator, as lm-eval does: a forward
pass (and, where the run learns from gradients, a backward pass) on the run's longest sentences,
halving from ``AUTO_START`` on out-of-memory, then bisecting up to the largest size that fits.
On the CPU it is ``DEFAULT``.
"""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .arguments import positive_int
from .errors import UserError, out_of_memory
from .pairs import MinimalPair
from .tree_attention import input_device

log = logging.getLogger("lingspace_harness")

#: The default batch size, which the pass bounds were measured at.
DEFAULT = 128
AUTO = "auto"
#: Where ``auto`` starts halving (capped at the run's number of distinct sentences).
AUTO_START = 4096
#: Sentences per gradient pass at the default batch size.
GRADIENT_BATCH = 64


def batch_size_arg(value: str) -> int | str:
    """An argparse type: a whole number of at least 1, or ``auto``."""
    if value.strip().lower() == AUTO:
        return AUTO
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1 or 'auto', got {value!r}") from exc


def scaled(value: int, batch_size: int, reference: int = DEFAULT) -> int:
    """A pass bound measured at ``reference`` sentences per pass, for ``batch_size``: the same
    up to ``reference``, in proportion above it."""
    return value if batch_size <= reference else value * batch_size // reference


def gradient_batch(batch_size: int) -> int:
    """Sentences per gradient pass: up to ``GRADIENT_BATCH`` (64) as the batch, half the batch above 128."""
    return min(batch_size, max(GRADIENT_BATCH, batch_size // 2))


def largest_fitting(fits: Callable[[int], bool], start: int) -> int:
    """The largest size from 1 to ``start`` for which ``fits(size)``: halve from ``start`` until
    one fits, then bisect between it and the smallest that did not (what fits, fits smaller too)."""
    size, failed = max(1, start), None
    while not fits(size):
        if size == 1:
            raise UserError("out of memory even at one sentence per forward pass; use a smaller --dtype or model")
        failed, size = size, size // 2
    while failed is not None and failed - size > 1:
        middle = (size + failed) // 2
        if fits(middle):
            size = middle
        else:
            failed = middle
    return size


def fits(attempt: Callable[[int], None], size: int, device: Any = None) -> bool:
    """Whether ``attempt(size)`` runs without running out of memory (other errors propagate);
    the device's cached memory is released afterwards either way."""
    try:
        attempt(size)
        return True
    except (RuntimeError, MemoryError) as exc:
        if not out_of_memory(exc):
            raise
        return False
    finally:
        release(device)


def release(device: Any) -> None:
    """Free what the last attempt left: garbage, and the device's cached blocks (CUDA, MPS, XPU)."""
    gc.collect()
    import torch

    backend = getattr(torch, getattr(device, "type", "cpu"), None)
    empty = getattr(backend, "empty_cache", None)
    if callable(empty):
        empty()


def auto_batch_size(
    access: Any,
    sentences: Sequence[str],
    pairs: Sequence[MinimalPair] = (),
    params: Sequence[tuple[str, Any]] | None = None,
    start: int = AUTO_START,
) -> int:
    """``--batch-size auto`` for ``access`` (a ``ModelAccess``): ``DEFAULT`` on the CPU; on an
    accelerator the largest batch for which scoring the longest of ``sentences`` (and, with
    ``params``, the gradient differential of the longest of ``pairs``) fits in memory."""
    device = input_device(access.model)
    if getattr(device, "type", "cpu") == "cpu":
        return DEFAULT
    distinct = list(dict.fromkeys(sentences))
    length = {s: len(cont) for s, (_, cont) in zip(distinct, access.requests(distinct))}
    longest = sorted(distinct, key=lambda s: -length[s])
    widest = sorted(pairs, key=lambda p: -max(length.get(p.good, 0), length.get(p.bad, 0)))

    def attempt(size: int) -> None:
        previous, access.batch_size = access.batch_size, size
        try:
            access.score(longest[:size])
            if params:
                access.gradient_differential(widest[: max(1, size // 2)], params)
        finally:
            access.batch_size = previous

    size = largest_fitting(lambda n: fits(attempt, n, device), min(start, len(longest)))
    log.info("--batch-size auto: %d sentences per forward pass on %s", size, device)
    return size
