"""The gradient of a linear layer's masked weight entries, without its dense weight gradient.

Tuning a sparse mask needs d loss / d W[i, j] at the masked (i, j) only, but autograd computes
a weight's gradient whole (x^T dy: as costly as the layer's input gradient, and most of it is
thrown away). So a linear layer (``torch.nn.Linear``, or transformers' ``Conv1D``, whose weight
is stored transposed) whose weight has masked entries keeps its weight out of autograd: a
forward hook keeps the layer's input x, a hook on its output receives dy, and the masked
entries are read from one small product over the rows R and columns C that hold them,
dy[:, R]^T x[:, C]. The values are the dense gradient's up to float rounding (the sum over
tokens runs in another order). A hook on the input embeddings makes their output require a
gradient, so every layer's output gradient is computed even when nothing before it is tuned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def _transposed(module: Any) -> bool | None:
    """Whether a linear layer stores its weight (in, out); None: not a linear layer handled here."""
    import torch

    if type(module) is torch.nn.Linear:
        return False
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return True if type(module) is Conv1D else None


def linear_owners(model: Any) -> dict[int, tuple[Any, bool]]:
    """``id(weight) -> (module, transposed)`` for each linear layer whose weight belongs to no
    other module (a tied weight keeps autograd's dense gradient)."""
    owners: dict[int, list[Any]] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), []).append(module)
    found = {
        key: (mods[0], _transposed(mods[0]))
        for key, mods in owners.items()
        if len(mods) == 1 and id(getattr(mods[0], "weight", None)) == key
    }
    return {key: (module, flag) for key, (module, flag) in found.items() if flag is not None}


class MaskedLinearGrads:
    """Masked-entry gradients of linear weights. ``layers`` holds each module, whether its
    weight is stored transposed, and the flat indices (int64 tensor) of its weight's masked
    entries. After a backward pass inside ``attached()``, ``grads[k]`` holds layer k's gradient
    at those entries (None if it got none); ``clear()`` resets them. A layer whose output
    needed no gradient while one was being recorded lands in ``unreached`` (then its entries
    would silently get none)."""

    def __init__(self, model: Any, layers: Sequence[tuple[Any, bool, Any]]) -> None:
        import torch

        self.model = model
        self.modules = [module for module, _, _ in layers]
        self.plans = []
        for module, transposed, indices in layers:
            columns = module.weight.shape[1]
            rows, r_local = torch.unique(indices // columns, return_inverse=True)
            cols, c_local = torch.unique(indices % columns, return_inverse=True)
            self.plans.append((transposed, rows, cols, r_local, c_local))
        self.grads: list[Any] = [None] * len(self.modules)
        self.unreached: set[int] = set()

    def clear(self) -> None:
        self.grads = [None] * len(self.modules)

    def _accumulate(self, k: int, x: Any, dy: Any) -> None:
        transposed, rows, cols, r_local, c_local = self.plans[k]
        x2, dy2 = x.reshape(-1, x.shape[-1]).to(dy.dtype), dy.reshape(-1, dy.shape[-1])
        left, right = (x2, dy2) if transposed else (dy2, x2)  # weight (in, out): x^T dy; (out, in): dy^T x
        block = left.index_select(1, rows).transpose(0, 1) @ right.index_select(1, cols)
        values = block[r_local, c_local]
        self.grads[k] = values if self.grads[k] is None else self.grads[k] + values

    def _layer_hook(self, k: int) -> Any:
        import torch

        def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            if not torch.is_grad_enabled():
                return
            if not output.requires_grad:
                self.unreached.add(k)
                return
            x = inputs[0].detach()
            output.register_hook(lambda dy: self._accumulate(k, x, dy))

        return hook

    @staticmethod
    def _embedding_hook(module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        import torch

        if torch.is_grad_enabled() and not output.requires_grad:
            return output.requires_grad_()
        return None

    @contextmanager
    def attached(self) -> Iterator[None]:
        """The hooks, installed for the duration."""
        handles = [m.register_forward_hook(self._layer_hook(k)) for k, m in enumerate(self.modules)]
        embeddings = self.model.get_input_embeddings() if self.modules else None
        if embeddings is not None:
            handles.append(embeddings.register_forward_hook(self._embedding_hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
