"""One way into a loaded model: scoring, gradient differentials, tuning log-probs, hidden states.

:class:`ModelAccess` owns the choice between prefix-tree batching (``trie``: shared prefixes
computed once under a tree-shaped attention mask) and plain batching (``padded``: one
sequence per row, ordinary causal attention), and the check that a model honours tree masks.
With ``auto`` the first batch the model sees, whatever the operation, is scored both ways;
if they disagree every later computation (scores, gradients, FTGD steps and validation,
hidden states) uses padded rows. ``--scoring padded`` applies to all of them too.

Every sentence is scored after a delimiter (``delimiter``: a space by default, as in lm-eval's
BLiMP; a task's ``Task.delimiter``): one string for all sentences, or one per sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .batch_size import DEFAULT, gradient_batch, scaled
from .errors import UserError
from .gradients import gradient_differentials
from .pairs import MinimalPair
from .prefix_trees import TREE_NODES, Request, tree_batches
from .scoring import (
    METHODS,
    Delimiters,
    choose_method,
    logit_rows,
    request_logprobs,
    score_requests,
    sentence_requests,
    softmax_rows,
)
from .tree_attention import input_device

log = logging.getLogger("lingspace_harness")
#: Sentences per hidden-state pass at the default batch size (``batch_size.scaled`` above it).
HIDDEN_BATCH = 32


class ModelAccess:
    """Scores, gradients and hidden states of one torch causal LM, all batched the same way."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prefix_id: int,
        *,
        method: str = "auto",
        batch_size: int = DEFAULT,
        tree_nodes: int = TREE_NODES,
    ) -> None:
        if method not in METHODS:
            raise UserError(f"unknown scoring method {method!r}; choose from {', '.join(METHODS)}")
        self.model, self.tokenizer, self.prefix_id = model, tokenizer, prefix_id
        self.requested = method
        self.batch_size, self.tree_nodes = batch_size, tree_nodes
        self._method: str | None = None if method == "auto" else method

    @property
    def method(self) -> str | None:
        """``trie`` or ``padded`` once decided (``auto`` decides on the first batch), else None."""
        return self._method

    def requests(self, sentences: Sequence[str], delimiter: Delimiters = " ") -> list[Request]:
        return sentence_requests(self.tokenizer, sentences, self.prefix_id, delimiter)

    def batches(self, requests: Sequence[Request], batch_size: int | None = None) -> list[list[Any]]:
        """The requests grouped for forward passes: prefix trees, or one chain per request."""
        self._decide(requests)
        size = batch_size or self.batch_size
        rows = logit_rows(self.model, self.batch_size)
        return tree_batches(requests, size, self.tree_nodes, rows, share=self._method == "trie")

    def decide(self, sentences: Sequence[str]) -> str:
        """Settle ``trie`` or ``padded`` (``auto`` checks on these sentences) and return it."""
        self._decide(self.requests(list(sentences)[:8]))
        return self._method or "auto"

    def _decide(self, requests: Sequence[Request]) -> None:
        if self._method is None and requests:
            self._method = choose_method(self.model, requests, self.tree_nodes)

    # -- operations ------------------------------------------------------------------
    def score(
        self, sentences: Sequence[str], progress: Callable[[int], None] | None = None, delimiter: Delimiters = " "
    ) -> np.ndarray:
        """Each sentence's summed log-probability after the prefix token (float64)."""
        return self.score_counted(sentences, progress, delimiter)[0]

    def score_counted(
        self, sentences: Sequence[str], progress: Callable[[int], None] | None = None, delimiter: Delimiters = " "
    ) -> tuple[np.ndarray, list[int]]:
        """``score``, and how many tokens each sum is over (the sentence's continuation after the
        prefix token), from one tokenisation."""
        requests = self.requests(sentences, delimiter)
        self._decide(requests)
        scores = score_requests(
            self.model,
            requests,
            batch_size=self.batch_size,
            tree_nodes=self.tree_nodes,
            method=self._method or "auto",
            progress=progress,
        )
        return scores, [len(cont) for _, cont in requests]

    def logprobs(self, sentences: Sequence[str], delimiter: Delimiters = " ") -> list[Any]:
        """Differentiable summed log-probs (scalar tensors), one per sentence (FTGD's objective)."""
        requests = self.requests(sentences, delimiter)
        out: dict[int, Any] = {}
        for group in self.batches(requests, len(requests)):
            out.update(request_logprobs(self.model, group, requests, softmax_rows(self.batch_size)))
        return [out[i] for i in range(len(requests))]

    def mean_margin(self, pairs: Sequence[MinimalPair], delimiter: str = " ") -> float:
        """Mean log p(good) - log p(bad) over ``pairs``."""
        scores = self.score([s for p in pairs for s in (p.good, p.bad)], delimiter=delimiter)
        return float(np.mean(scores[0::2] - scores[1::2]))

    def gradient_differential(
        self,
        pairs: Sequence[MinimalPair],
        params: Sequence[tuple[str, Any]],
        batch_size: int | None = None,
        delimiter: str = " ",
    ) -> np.ndarray:
        """Sum over pairs of grad[log p(good) - log p(bad)] w.r.t. ``params``, one flat float32
        vector in ``layout_of(params)`` order."""
        return self.gradient_differentials([pairs], params, batch_size, delimiter)[0]

    def gradient_differentials(
        self,
        groups: Sequence[Sequence[MinimalPair]],
        params: Sequence[tuple[str, Any]],
        batch_size: int | None = None,
        delimiter: str = " ",
        out: Sequence[np.ndarray] | None = None,
        on_device: bool = False,
    ) -> list[Any]:
        """``gradient_differential`` of each group of pairs (each exactly as if it were alone),
        into ``out`` (one float32 vector per group, reused memory) if given; ``on_device``:
        as float32 tensors on the model's device (see ``gradients.gradient_differentials``)."""
        self._decide(self.requests([s for g in groups for p in g[:4] for s in (p.good, p.bad)][:8], delimiter))
        return gradient_differentials(
            self.model,
            self.tokenizer,
            groups,
            self.prefix_id,
            params,
            batch_size=batch_size or gradient_batch(self.batch_size),
            tree_nodes=self.tree_nodes,
            share=self._method == "trie",
            delimiter=delimiter,
            out=out,
            on_device=on_device,
        )

    def hidden_states(
        self, sentences: Sequence[str], batch_size: int | None = None, delimiter: Delimiters = " "
    ) -> np.ndarray:
        """``[layers + 1, len(sentences), hidden]`` float32: each layer's hidden states
        (embeddings first) mean-pooled over the sentence's tokens, the prefix token left out.
        Right-padded plain rows: real tokens never attend to padding, so no mask is involved.
        ``batch_size``: sentences per pass (default ``HIDDEN_BATCH``, scaled to the access's batch)."""
        import torch

        encoded = [list(c) + list(x) for c, x in self.requests(sentences, delimiter)]
        pooled = []
        model, device = self.model, input_device(self.model)
        batch_size = batch_size or scaled(HIDDEN_BATCH, self.batch_size)
        with torch.inference_mode():
            for start in range(0, len(encoded), batch_size):
                batch = encoded[start : start + batch_size]
                width = max(len(e) for e in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                keep = torch.zeros((len(batch), width), dtype=torch.bool)
                for r, e in enumerate(batch):
                    ids[r, : len(e)] = torch.tensor(e)
                    keep[r, 1 : len(e)] = True
                out = model(input_ids=ids.to(device), output_hidden_states=True, use_cache=False)
                weights = keep.to(device, torch.float32)[None, :, :, None]
                states = torch.stack([h.to(device, torch.float32) for h in out.hidden_states])
                pooled.append(((states * weights).sum(2) / weights.sum(2)).cpu().numpy())
        return np.concatenate(pooled, axis=1)
