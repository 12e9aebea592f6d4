"""Attention masks for prefix trees packed into flat rows (see ``scoring``).

A node attends to itself and its ancestors. A custom 4D mask bypasses the model's own
masking, sliding windows included, so when a tree is deeper than a model's window (Gemma 2/3
local layers, Mistral) the window goes into the mask: a node attends only to ancestors fewer
than ``window`` positions back, exactly as in the model's own masks for a plain sequence. When
local and global layers alternate, the model gets one mask per layer type. Trees no deeper
than the window (all of BLiMP: at most 34 Gemma tokens with the prefix, against 512) need
no window at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserError


def text_config(model: Any) -> Any:
    """The model's (text) config, or None for a wrapper without one."""
    config = getattr(model, "config", None)
    return config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config


def input_device(model: Any) -> Any:
    """Where a model's inputs go: its first device (the embeddings') under a ``device_map``
    (accelerate moves the activations on from there), else ``model.device``."""
    import torch

    mapped = getattr(model, "hf_device_map", None) or {}
    first = next(iter(mapped.values()), "disk")
    return model.device if first == "disk" else torch.device(first)


def tree_mask(parent: np.ndarray, size: int) -> np.ndarray:
    """``allowed[i, j]``: node i attends to node j (an ancestor or itself). Padding attends to itself."""
    allowed = np.zeros((size, size), dtype=bool)
    for i, p in enumerate(parent):  # parents come before children
        if p >= 0:
            allowed[i] = allowed[p]
        allowed[i, i] = True
    idx = np.arange(len(parent), size)
    allowed[idx, idx] = True
    return allowed


def _sliding_window(config: Any) -> int | None:
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or getattr(config, "use_sliding_window", True) is False:
        return None
    return window


def tree_attention(model: Any, allowed: np.ndarray, depth: np.ndarray) -> Any:
    """The additive 4D mask for ``allowed`` (a dict per layer type where only some layers
    are windowed). A query attends to a key under a sliding window of size w only when
    their positions differ by less than w, as in the model's own masks."""
    import torch

    def additive(ok: np.ndarray) -> Any:
        mask = torch.zeros(ok.shape, dtype=model.dtype)
        return mask.masked_fill_(~torch.from_numpy(ok), torch.finfo(model.dtype).min).to(input_device(model))

    config = text_config(model)
    window = _sliding_window(config)
    if window is None or depth.max() < window:  # no ancestor is window or more positions back
        return additive(allowed)
    near = allowed & (depth[:, None, :, None] - depth[:, None, None, :] < window)
    types = set(getattr(config, "layer_types", None) or ["sliding_attention"])
    if types == {"sliding_attention"}:
        return additive(near)
    if types == {"sliding_attention", "full_attention"}:
        return {"full_attention": additive(allowed), "sliding_attention": additive(near)}
    raise UserError(
        f"tree scoring cannot mask layer types {sorted(types)} beyond their "
        f"{window}-token window; score with --scoring padded"
    )
