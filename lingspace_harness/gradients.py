"""Gradient differentials: for minimal pairs P, D = sum over (g, b) in P of grad[log p(g) - log p(b)].

The pairs are packed into prefix trees as for scoring, so a pair's shared start is computed
once, and every token before the first difference carries weight +1 - 1 = 0 and is left out
of the objective entirely (no LM head, no backward through its log-prob). One backward pass
per batch accumulates the sum, in place, into one flat buffer; there are no per-example
gradients. A batch holds at most ``GRADIENT_ROWS`` positions' logits (fewer for a large vocabulary:
``logit_rows``), which also bounds its activations; both grow in proportion to gradient batches
above ``GRADIENT_BATCH`` (64) sentences (``batch_size.scaled``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch_size import GRADIENT_BATCH, scaled
from .errors import UserError
from .pairs import MinimalPair
from .prefix_trees import TREE_NODES, tree_batches
from .scoring import Delimiters, logit_rows, sentence_requests, softmax_rows, weighted_logprob_sum

if TYPE_CHECKING:
    import torch

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["gradient_differential", "gradient_differentials", "layout_of", "select_parameters"]

_LAYER = re.compile(r"\.(?:layers|h|layer|blocks)\.(\d+)\.")
#: Positions a gradient pass of ``GRADIENT_BATCH`` sentences keeps logits for (and so, about, tokens
#: it holds activations for): on SmolLM2 (2 cores) 128 holds ~0.3 GB of activations where 1365
#: (scoring's bound) held ~1.1 GB, at the same speed.
GRADIENT_ROWS = 128


@dataclass(frozen=True)
class ParamLayout:
    """Which parameters a flat gradient vector holds, and where each one sits in it."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.shapes]

    @property
    def offsets(self) -> list[int]:
        return [0, *np.cumsum(self.sizes).tolist()]

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def layer_of(self, name: str) -> str:
        """``"3"`` for a parameter of transformer block 3; ``"other"`` for the rest."""
        match = _LAYER.search("." + name)
        return match.group(1) if match else "other"

    def layers(self) -> dict[str, list[tuple[int, int]]]:
        """Layer -> the (start, end) slices of the flat vector that belong to it."""
        out: dict[str, list[tuple[int, int]]] = {}
        offsets = self.offsets
        for i, name in enumerate(self.names):
            out.setdefault(self.layer_of(name), []).append((offsets[i], offsets[i + 1]))
        return dict(sorted(out.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0)))


def select_parameters(model: Any, include_embeddings: bool = False) -> list[tuple[str, torch.nn.Parameter]]:
    """The model's trainable parameters, without token/position embeddings (and a tied LM head)
    unless ``include_embeddings``."""
    import torch

    embedding_ids = set()
    if not include_embeddings:
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                embedding_ids.add(id(module.weight))
        head = model.get_output_embeddings()
        if head is not None:
            embedding_ids.add(id(head.weight))
    seen = set()
    chosen = []
    for name, param in model.named_parameters():
        if id(param) in seen or id(param) in embedding_ids:
            continue
        seen.add(id(param))
        chosen.append((name, param))
    return chosen


def layout_of(params: Sequence[tuple[str, torch.Tensor]]) -> ParamLayout:
    return ParamLayout(tuple(n for n, _ in params), tuple(tuple(p.shape) for _, p in params))


def gradient_differential(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[MinimalPair],
    prefix_id: int,
    params: Sequence[tuple[str, torch.Tensor]],
    *,
    batch_size: int = 64,
    tree_nodes: int = TREE_NODES,
    share: bool = True,
    delimiter: Delimiters = " ",
) -> np.ndarray:
    """The summed gradient differential of ``pairs`` w.r.t. ``params``, as one flat float32 vector
    (in ``layout_of(params)`` order). Other parameters get no gradient and are not touched.
    ``share=False`` batches plain padded rows instead of prefix trees (see ``tree_batches``);
    ``delimiter`` comes before every sentence (see ``sentence_requests``)."""
    return gradient_differentials(
        model,
        tokenizer,
        [pairs],
        prefix_id,
        params,
        batch_size=batch_size,
        tree_nodes=tree_nodes,
        share=share,
        delimiter=delimiter,
    )[0]


def gradient_differentials(
    model: Any,
    tokenizer: Any,
    groups: Sequence[Sequence[MinimalPair]],
    prefix_id: int,
    params: Sequence[tuple[str, torch.Tensor]],
    *,
    batch_size: int = 64,
    tree_nodes: int = TREE_NODES,
    share: bool = True,
    delimiter: Delimiters = " ",
    out: Sequence[np.ndarray] | None = None,
    on_device: bool = False,
) -> list[Any]:
    """``gradient_differential`` of each group of pairs, one after another: each group is batched
    and summed exactly as it would be alone (a group's vector does not depend on the others).
    ``out``: one float32 vector per group to accumulate into (overwritten) and return, so that a
    caller computing many differentials reuses its memory instead of faulting in new pages.
    ``on_device``: return float32 torch tensors on the parameters' device instead (nothing
    crosses to the host; ``out`` is then not used)."""
    if on_device and out is not None:
        raise ValueError("on_device differentials are new tensors: out cannot be given")
    if out is not None and len(out) != len(groups):
        raise ValueError(f"{len(groups)} groups need {len(groups)} output vectors, got {len(out)}")
    wanted = {id(p) for _, p in params}
    previous = {}
    for _, param in model.named_parameters():
        previous[id(param)] = param.requires_grad
        param.requires_grad_(id(param) in wanted)
        param.grad = None
    was_training = model.training
    try:
        model.eval()  # no dropout: the gradient of the model as scored
        return [
            _differential(
                model,
                tokenizer,
                pairs,
                prefix_id,
                params,
                batch_size=batch_size,
                tree_nodes=tree_nodes,
                share=share,
                delimiter=delimiter,
                out=None if out is None else out[i],
                on_device=on_device,
            )
            for i, pairs in enumerate(groups)
        ]
    finally:
        for _, param in model.named_parameters():
            param.grad = None
            param.requires_grad_(previous[id(param)])
        model.train(was_training)


def _differential(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[MinimalPair],
    prefix_id: int,
    params: Sequence[tuple[str, torch.Tensor]],
    *,
    batch_size: int,
    tree_nodes: int,
    share: bool,
    delimiter: Delimiters,
    out: np.ndarray | None,
    on_device: bool = False,
) -> Any:
    """One group's summed differential. Backward accumulates straight into one flat buffer (each
    parameter's ``.grad`` is a view of it), so no gradient is held twice or copied. A half-precision
    model's batches are summed into a float32 vector instead (one rounding per batch, not per sum)."""
    import torch

    sentences = [s for p in pairs for s in (p.good, p.bad)]
    requests = sentence_requests(tokenizer, sentences, prefix_id, delimiter)
    weights = np.tile(np.array([1.0, -1.0]), len(pairs))
    cap = scaled(GRADIENT_ROWS, batch_size, GRADIENT_BATCH)
    rows = min(logit_rows(model, batch_size, GRADIENT_BATCH) or cap, cap)
    buffer = _grad_buffer(params, out)
    total = buffer.new_zeros(buffer.shape, dtype=torch.float32) if half_precision(buffer) else None
    try:
        for group in tree_batches(requests, batch_size, tree_nodes, rows, share=share):
            objective = weighted_logprob_sum(model, group, requests, weights, softmax_rows(batch_size, GRADIENT_BATCH))
            if objective.requires_grad:
                objective.backward()
                if total is not None:  # a half-precision model: each batch's gradient is summed in float32
                    total.add_(buffer)
                    buffer.zero_()
    finally:
        for _, param in params:
            param.grad = None
    summed = (buffer if total is None else total).detach().float()
    if on_device:
        return summed
    flat = summed.cpu().numpy()
    if out is None:
        return flat
    if not np.may_share_memory(flat, out):  # the buffer was not ``out`` itself (another dtype or device)
        out[:] = flat
    return out


def half_precision(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is 16-bit floating point: its sums are accumulated in float32."""
    return bool(tensor.is_floating_point() and tensor.element_size() < 4)


def _grad_buffer(params: Sequence[tuple[str, torch.Tensor]], out: np.ndarray | None = None) -> torch.Tensor:
    """A zeroed flat tensor, in the parameters' dtype and device, with each parameter's ``.grad``
    set to its slice: backward then adds every batch's gradient into it in place. It is ``out``
    itself where the parameters are float32 on the CPU."""
    import torch

    first = params[0][1]
    if any(p.device != first.device for _, p in params):
        devices = ", ".join(sorted({str(p.device) for _, p in params}))
        raise UserError(f"gradients need the model on one device; its parameters are on {devices} (see --device-map)")
    if any(p.dtype != first.dtype for _, p in params):
        raise ValueError("gradient differentials need parameters of one dtype")
    size = sum(p.numel() for _, p in params)
    if out is not None and (out.dtype != np.float32 or out.shape != (size,)):
        raise ValueError(f"out must be a float32 vector of {size} entries, got {out.dtype} {out.shape}")
    if out is not None and first.dtype == torch.float32 and first.device.type == "cpu":
        buffer = torch.from_numpy(out)
        buffer.zero_()
    else:
        buffer = torch.zeros(size, dtype=first.dtype, device=first.device)
    offset = 0
    for _, param in params:
        param.grad = buffer[offset : offset + param.numel()].view_as(param)
        offset += param.numel()
    return buffer
