"""Packing scoring requests into prefix trees (tries): sorted neighbours share their common
prefix, so every distinct prefix is one node (see ``scoring``'s ``trie`` method)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A request: ``(context_ids, continuation_ids)``.
Request = tuple[Sequence[int], Sequence[int]]
#: Default largest prefix tree per batch row, in tokens (see ``scoring.score_requests``).
TREE_NODES = 192


@dataclass
class Chunk:
    """Requests packed into one prefix tree: each node a token, with its parent and position."""

    tokens: np.ndarray  # node -> token id
    parent: np.ndarray  # node -> parent node, -1 for a root
    depth: np.ndarray  # node -> position id
    paths: list[list[int]]  # request (in chunk order) -> node ids
    requests: list[int]  # chunk order -> request index


def build_chunks(requests: Sequence[Request], batch_size: int, max_nodes: int) -> list[Chunk]:
    """The requests, sorted, packed into trees of at most ``batch_size`` requests and ``max_nodes``
    tokens; each request shares its longest common prefix with the one before it."""
    full = [tuple(c) + tuple(x) for c, x in requests]
    order = sorted(range(len(full)), key=lambda i: full[i])
    chunks: list[Chunk] = []
    tokens: list[int] = []
    parent: list[int] = []
    depth: list[int] = []
    paths: list[list[int]] = []
    members: list[int] = []
    prev: tuple[int, ...] = ()

    def flush() -> None:
        if members:
            chunks.append(Chunk(np.array(tokens), np.array(parent), np.array(depth), list(paths), list(members)))
        for buf in (tokens, parent, depth, paths, members):
            buf.clear()

    for i in order:
        seq = full[i]
        lcp = 0
        if members:
            limit = min(len(seq), len(prev))
            while lcp < limit and seq[lcp] == prev[lcp]:
                lcp += 1
            if len(members) >= batch_size or len(tokens) + len(seq) - lcp > max_nodes:
                flush()
                lcp = 0
        path = paths[-1][:lcp] if lcp else []
        for pos in range(lcp, len(seq)):
            parent.append(path[-1] if path else -1)
            tokens.append(seq[pos])
            depth.append(pos)
            path.append(len(tokens) - 1)
        paths.append(path)
        members.append(i)
        prev = seq
    flush()
    return chunks


def tree_batches(
    requests: Sequence[Request],
    batch_size: int,
    tree_nodes: int = TREE_NODES,
    max_rows: int | None = None,
    share: bool = True,
) -> list[list[Chunk]]:
    """The requests packed into prefix trees of at most ``tree_nodes`` tokens (a longer
    sequence gets a tree of its own), grouped about ``batch_size`` sequences per forward pass.
    With ``max_rows`` (see ``logit_rows``), a pass also keeps at most that many positions'
    logits, unless a single tree needs more. ``share=False`` gives every request a chain of
    its own (plain padded rows: nothing shared, so the result does not depend on the model
    honouring the tree mask)."""
    if not requests:
        return []
    if not share:
        return groups(build_chunks(requests, 1, 0), batch_size, max_rows)
    longest = max(len(c) + len(x) for c, x in requests)
    nodes = max(min(tree_nodes, max_rows or tree_nodes), longest)
    return groups(build_chunks(requests, batch_size, nodes), batch_size, max_rows)


def groups(chunks: list[Chunk], batch_size: int, max_rows: int | None) -> list[list[Chunk]]:
    """Consecutive tries holding about ``batch_size`` sequences (and ``max_rows`` inner nodes,
    a bound on the rows of logits) together."""
    groups: list[list[Chunk]] = [[]]
    count = rows = 0
    for chunk in chunks:
        inner = len(np.unique(chunk.parent[chunk.parent >= 0]))
        if groups[-1] and (
            count + len(chunk.requests) > batch_size or max_rows is not None and rows + inner > max_rows
        ):
            groups.append([])
            count = rows = 0
        groups[-1].append(chunk)
        count += len(chunk.requests)
        rows += inner
    return groups
