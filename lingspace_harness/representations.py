"""Sentence representations per layer: hidden states mean-pooled over a sentence's tokens."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def pooled_hidden_states(model: Any, tokenizer: Any, sentences: Sequence[str], prefix_id: int,
                         batch_size: int = 32) -> np.ndarray:
    """``[layers + 1, len(sentences), hidden]`` float32: each layer's hidden states (embeddings
    first), averaged over the sentence's tokens (the prefix token left out)."""
    import torch

    encoded = [[prefix_id] + ids for ids in
               tokenizer([" " + s for s in sentences], add_special_tokens=False)["input_ids"]]
    pooled = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start:start + batch_size]
            width = max(len(e) for e in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            keep = torch.zeros((len(batch), width), dtype=torch.bool)
            for r, e in enumerate(batch):
                ids[r, :len(e)] = torch.tensor(e)
                keep[r, 1:len(e)] = True
            # right padding: real tokens never attend to it, so no attention mask is needed
            out = model(input_ids=ids.to(model.device), output_hidden_states=True, use_cache=False)
            weights = keep.to(model.device, torch.float32)[None, :, :, None]
            states = torch.stack([h.float() for h in out.hidden_states])  # layers, batch, width, hidden
            pooled.append(((states * weights).sum(2) / weights.sum(2)).cpu().numpy())
    return np.concatenate(pooled, axis=1)
