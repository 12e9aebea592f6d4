"""Exact log-probabilities of sentences under a causal LM, following lm-eval's conventions.

A request is ``(context_ids, continuation_ids)``; its score is the summed log-prob of the
continuation tokens. For BLiMP, as in lm-eval, the context is one prefix token (BOS, else
EOS) and the continuation is the sentence after a space (a task's ``target_delimiter``).

The ``trie`` method sorts the sequences, packs neighbours into prefix trees of up to
``tree_nodes`` tokens, and runs each tree as one flat row with a tree-shaped attention
mask (several trees per forward pass, one per batch row). Every distinct prefix in a tree
is computed once (the shared start of a good/bad pair, and of sentences that begin
alike), a sentence's last token is never an input, rows are padded only to the widest
tree of their batch (about 3% on BLiMP), and the LM head runs only where a next token is
scored. A token's log-prob depends only on its prefix, so this is exact. The ``padded``
method is the plain batched forward pass; ``auto`` checks ``trie`` against it on the first batch and falls back if a
model ignores custom attention masks.

Tree masks honour sliding-window attention (see ``tree_attention``).

Memory: a forward pass keeps logits for at most ``logit_rows(model, batch_size)`` positions
(about ``LOGIT_BUDGET`` bytes at 128 sentences per pass, 256 rows for a 262k vocabulary), and
log-softmax runs ``SOFTMAX_ROWS`` rows at a time (recomputed in the backward pass rather than
stored); both grow in proportion to batches above 128 (``batch_size.scaled``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .batch_size import DEFAULT, scaled
from .errors import UserError
from .prefix_trees import TREE_NODES, Chunk, Request, tree_batches
from .tree_attention import input_device, text_config, tree_attention, tree_mask

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["prefix_token_id"]

log = logging.getLogger("lingspace_harness")

METHODS = ("auto", "trie", "padded")
#: Bytes of float32 logits one forward pass of 128 sentences may hold (rows times the vocabulary).
LOGIT_BUDGET = 256 * 2**20
#: Rows of logits that go through log-softmax at once, at 128 sentences per pass.
SOFTMAX_ROWS = 32


def logit_rows(model: Any, batch_size: int = DEFAULT, reference: int = DEFAULT) -> int | None:
    """How many positions' logits fit in ``LOGIT_BUDGET``, scaled to ``batch_size`` (a batch of
    ``reference`` sentences gets the budget itself); None: the vocabulary size is unknown."""
    vocab = getattr(text_config(model), "vocab_size", None)
    return max(1, scaled(LOGIT_BUDGET, batch_size, reference) // (4 * int(vocab))) if vocab else None


def softmax_rows(batch_size: int = DEFAULT, reference: int = DEFAULT) -> int:
    """Rows per log-softmax block for a pass of ``batch_size`` sentences (``SOFTMAX_ROWS`` at ``reference``)."""
    return scaled(SOFTMAX_ROWS, batch_size, reference)


def prefix_token_id(tokenizer: Any, override: str | int | None = None) -> int:
    """lm-eval's prefix token: ``override`` (a token or an id), else BOS, else EOS."""
    if override is None or override == "":
        for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
            if tid is not None:
                return int(tid)
        raise UserError("the tokenizer has neither a BOS nor an EOS token; pass --prefix-token")
    if isinstance(override, int) or str(override).isdigit():
        tid = int(override)
        if not 0 <= tid < len(tokenizer):
            raise UserError(f"--prefix-token {tid} is outside the vocabulary (size {len(tokenizer)})")
        return tid
    tid = tokenizer.convert_tokens_to_ids(override)
    if tid is None or (tid == tokenizer.unk_token_id and override != tokenizer.unk_token):
        raise UserError(f"--prefix-token {override!r} is not a token of this tokenizer")
    return int(tid)


Delimiters = str | Sequence[str]  # one for all sentences, or one per sentence


def sentence_requests(
    tokenizer: Any, sentences: Sequence[str], prefix_id: int, delimiter: Delimiters = " "
) -> list[Request]:
    """Encode sentences as lm-eval does for an empty context: ``[prefix] + enc(delimiter + s)``
    (lm-eval's ``target_delimiter``: a space for BLiMP; a sequence gives one per sentence).
    No sentences give no requests (e.g. the empty first half of a one-pair training split)."""
    if not sentences:  # a fast tokenizer raises IndexError on an empty batch
        return []
    delimiters = [delimiter] * len(sentences) if isinstance(delimiter, str) else delimiter
    texts = [d + s for d, s in zip(delimiters, sentences, strict=True)]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    requests = []
    for ids in encoded:
        if ids and ids[0] == prefix_id:  # lm-eval: the continuation already starts with it
            requests.append((ids[:1], ids[1:]))
        else:
            requests.append(([prefix_id], ids))
    return requests


@dataclass
class _Prepared:
    run_nodes: np.ndarray  # chunk nodes that go through the model (those with children)
    parent: np.ndarray  # parent as an index into run_nodes, -1 for a root
    keep_nodes: np.ndarray  # chunk nodes whose next-token distribution is needed
    nodes: np.ndarray  # scored nodes
    weight: np.ndarray  # node -> summed request weight (all ones without weights)


def _prepare(chunk: Chunk, requests: Sequence[Request], weights: np.ndarray | None) -> _Prepared:
    weight = np.zeros(len(chunk.tokens))
    scored = np.zeros(len(chunk.tokens), dtype=bool)
    for k, req_index in enumerate(chunk.requests):
        path = chunk.paths[k][len(requests[req_index][0]) :]
        scored[path] = True
        weight[path] += 1.0 if weights is None else weights[req_index]
    if weights is not None:  # e.g. +1 good, -1 bad: a shared prefix cancels exactly
        scored &= weight != 0
    nodes = np.flatnonzero(scored)
    # A node without children is only ever a target: it needs no forward pass.
    run = np.zeros(len(chunk.tokens), dtype=bool)
    run[chunk.parent[chunk.parent >= 0]] = True
    run_nodes = np.flatnonzero(run)
    slot = np.full(len(chunk.tokens), -1, dtype=np.int64)
    slot[run_nodes] = np.arange(len(run_nodes))
    parent = np.where(chunk.parent[run_nodes] >= 0, slot[chunk.parent[run_nodes]], -1)
    keep_nodes = np.unique(chunk.parent[nodes])
    return _Prepared(run_nodes, parent, keep_nodes, nodes, weight)


def _forward_trees(
    model: Any,
    chunks: Sequence[Chunk],
    requests: Sequence[Request],
    weights: np.ndarray | None = None,
    block: int | None = None,
) -> list[tuple[_Prepared, Any]]:
    """One forward pass over several tries (one per batch row): each scored node's log-prob
    (log-softmax ``block`` rows at a time, default ``SOFTMAX_ROWS``)."""
    import torch

    device = input_device(model)
    prepared = [_prepare(c, requests, weights) for c in chunks]
    width = max(len(p.run_nodes) for p in prepared)
    ids = np.zeros((len(chunks), width), dtype=np.int64)
    pos = np.zeros((len(chunks), width), dtype=np.int64)
    allowed = np.zeros((len(chunks), 1, width, width), dtype=bool)
    keep = np.zeros((len(chunks), width), dtype=bool)
    for b, (c, p) in enumerate(zip(chunks, prepared)):
        n = len(p.run_nodes)
        ids[b, :n] = c.tokens[p.run_nodes]
        pos[b, :n] = c.depth[p.run_nodes]
        allowed[b, 0] = tree_mask(p.parent, width)
        slot = np.full(len(c.tokens), -1, dtype=np.int64)
        slot[p.run_nodes] = np.arange(n)
        keep[b, slot[p.keep_nodes]] = True
    out = model(
        input_ids=torch.from_numpy(ids).to(device),
        position_ids=torch.from_numpy(pos).to(device),
        attention_mask=tree_attention(model, allowed, pos),
        logits_to_keep=torch.from_numpy(keep).to(device),
        use_cache=False,
    )
    rows, toks, sizes = [], [], []
    offset = 0
    for c, p in zip(chunks, prepared):
        row = np.full(len(c.tokens), -1, dtype=np.int64)
        row[p.keep_nodes] = offset + np.arange(len(p.keep_nodes))  # keep order: batch row, then slot
        offset += len(p.keep_nodes)
        rows.append(row[c.parent[p.nodes]])
        toks.append(c.tokens[p.nodes])
        sizes.append(len(p.nodes))
    logprobs = _target_logprobs(
        out.logits.reshape(-1, out.logits.shape[-1]),
        torch.from_numpy(np.concatenate(rows)).to(out.logits.device),
        torch.from_numpy(np.concatenate(toks)).to(out.logits.device),
        block,
    )
    return list(zip(prepared, torch.split(logprobs, sizes)))


def _target_logprobs(logits: Any, rows: Any, toks: Any, block: int | None = None) -> Any:
    """``log_softmax(logits)[rows, toks]``, ``block`` (``SOFTMAX_ROWS``) rows at a time: never a second
    [rows, vocab] tensor. Under autograd each block is recomputed in the backward pass
    instead of being stored. Log-softmax then gather, as lm-eval does (logit - logsumexp
    differs by ~1e-5 per token)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def pick(block: Any, r: Any, t: Any) -> Any:
        return torch.log_softmax(_at_least_fp32(block), dim=-1)[r, t]

    step = block or SOFTMAX_ROWS
    pieces, where = [], []
    for start in range(0, logits.shape[0], step):
        sel = torch.nonzero((rows >= start) & (rows < start + step)).flatten()
        if len(sel):
            args = (logits[start : start + step], rows[sel] - start, toks[sel])
            pieces.append(checkpoint(pick, *args, use_reentrant=False) if logits.requires_grad else pick(*args))
            where.append(sel)
    if not pieces:
        return logits.new_zeros(0, dtype=torch.float64 if logits.dtype == torch.float64 else torch.float32)
    return torch.cat(pieces)[torch.argsort(torch.cat(where))]


def _score_chunks(
    model: Any, chunks: Sequence[Chunk], requests: Sequence[Request], block: int | None = None
) -> dict[int, float]:
    """Summed continuation log-prob of every request in ``chunks``."""
    results = {}
    for c, (p, node_logprobs) in zip(chunks, _forward_trees(model, chunks, requests, block=block)):
        node_lp = np.zeros(len(c.tokens), dtype=np.float64)
        node_lp[p.nodes] = node_logprobs.detach().cpu().numpy()
        for k, req_index in enumerate(c.requests):
            results[req_index] = float(node_lp[c.paths[k][len(requests[req_index][0]) :]].sum())
    return results


def request_logprobs(
    model: Any, chunks: Sequence[Chunk], requests: Sequence[Request], block: int | None = None
) -> dict[int, Any]:
    """Each request's summed continuation log-prob as a (differentiable) scalar tensor."""
    out = {}
    for c, (p, node_logprobs) in zip(chunks, _forward_trees(model, chunks, requests, block=block)):
        where = np.full(len(c.tokens), -1, dtype=np.int64)
        where[p.nodes] = np.arange(len(p.nodes))
        for k, req_index in enumerate(c.requests):
            idx = where[c.paths[k][len(requests[req_index][0]) :]]
            out[req_index] = node_logprobs[idx].sum()
    return out


def weighted_logprob_sum(
    model: Any, chunks: Sequence[Chunk], requests: Sequence[Request], weights: np.ndarray, block: int | None = None
) -> Any:
    """Sum over requests of ``weights[i] * log p(continuation i)``, as a differentiable scalar.

    Tokens whose weights cancel (a good/bad pair's shared start) are left out."""
    import torch

    total: Any = None
    for p, node_logprobs in _forward_trees(model, chunks, requests, weights, block):
        term = (node_logprobs * torch.from_numpy(p.weight[p.nodes]).to(node_logprobs)).sum()
        total = term if total is None else total + term
    return torch.zeros((), device=input_device(model)) if total is None else total


def _at_least_fp32(logits: Any) -> Any:
    """float32 for half-precision logits (as lm-eval does); float64 stays float64."""
    import torch

    return logits if logits.dtype == torch.float64 else logits.float()


def _score_padded(model: Any, requests: Sequence[Request], indices: Sequence[int]) -> dict[int, float]:
    """Plain right-padded forward passes, as few rows at a time as keep the logits in budget."""
    import torch

    seqs = [list(requests[i][0]) + list(requests[i][1]) for i in indices]
    width = max(len(s) for s in seqs) - 1
    step = max(1, (logit_rows(model) or len(seqs) * width) // width)
    results = {}
    for start in range(0, len(seqs), step):
        part = seqs[start : start + step]
        inputs = torch.zeros((len(part), width), dtype=torch.long)
        rows: list[int] = []
        toks: list[int] = []
        sizes: list[int] = []
        for r, s in enumerate(part):
            inputs[r, : len(s) - 1] = torch.tensor(s[:-1])
            n_ctx = len(requests[indices[start + r]][0])
            rows += range(r * width + n_ctx - 1, r * width + len(s) - 1)
            toks += s[n_ctx:]
            sizes.append(len(s) - n_ctx)
        logits = model(input_ids=inputs.to(input_device(model)), use_cache=False).logits
        logprobs = _target_logprobs(
            logits.reshape(-1, logits.shape[-1]),
            torch.tensor(rows, device=logits.device),
            torch.tensor(toks, device=logits.device),
        )
        for r, lp in enumerate(torch.split(logprobs, sizes)):
            results[indices[start + r]] = float(lp.double().sum())
    return results


def choose_method(model: Any, requests: Sequence[Request], tree_nodes: int = TREE_NODES) -> str:
    """``trie`` if tree-masked scoring of the first requests agrees with plain batching, else
    ``padded`` (the model ignores custom attention masks)."""
    import torch

    probe = list(requests[:8])
    with torch.inference_mode():
        ok = agrees(model, probe, score_batches(model, tree_batches(probe, len(probe), tree_nodes), probe))
    if not ok:
        log.warning("this model ignores tree attention masks; scoring, gradients and tuning use padded batches")
    return "trie" if ok else "padded"


def score_batches(model: Any, groups: Sequence[Sequence[Chunk]], requests: Sequence[Request]) -> dict[int, float]:
    """Summed continuation log-prob of every request in ``groups`` (one forward pass per group)."""
    out: dict[int, float] = {}
    for group in groups:
        out.update(_score_chunks(model, group, requests))
    return out


def score_requests(
    model: Any,
    requests: Sequence[Request],
    *,
    batch_size: int = 128,
    tree_nodes: int = TREE_NODES,
    method: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Summed continuation log-probs, one per request, in request order (float64).

    ``batch_size`` is the number of sequences per forward pass. With ``trie``, they are
    packed into prefix trees of at most ``tree_nodes`` tokens, one tree per batch row
    (smaller trees keep the tree-masked attention cheap); ``padded`` gives every sequence
    its own row; ``auto`` checks ``trie`` against plain batching first (``choose_method``).
    ``progress(n)`` is called with the number of requests finished by each pass.
    """
    import torch

    if method not in METHODS:
        raise UserError(f"unknown scoring method {method!r}; choose from {', '.join(METHODS)}")
    for i, (ctx, cont) in enumerate(requests):
        if not ctx or not cont:
            raise ValueError(f"request {i} needs a non-empty context and continuation")
    scores = np.empty(len(requests), dtype=np.float64)
    if not requests:
        return scores
    if method == "auto":
        method = choose_method(model, requests, tree_nodes)
    rows, block = logit_rows(model, batch_size), softmax_rows(batch_size)
    with torch.inference_mode():
        for group in tree_batches(requests, batch_size, tree_nodes, rows, share=method == "trie"):
            got = _score_chunks(model, group, requests, block)
            for i, v in got.items():
                scores[i] = v
            if progress:
                progress(len(got))
    return scores


def agrees(model: Any, requests: Sequence[Request], got: dict[int, float]) -> bool:
    probe = list(got)[:8]
    reference = _score_padded(model, requests, probe)
    return all(abs(reference[i] - got[i]) <= 1e-3 * max(1.0, abs(reference[i])) for i in probe)
