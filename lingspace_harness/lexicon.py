"""The model's own subword token types of a task's pairs (for the ``lexical-tokens`` control)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def token_types(tokenizer: Any, pairs: Sequence[Any], delimiter: str = " ") -> list[int] | None:
    """The sorted distinct token ids of the pairs' sentences as ``tokenizer`` encodes them for
    scoring (``delimiter + sentence`` without special tokens, as ``scoring.sentence_requests``
    does); None without a tokenizer."""
    if tokenizer is None:
        return None
    texts = [delimiter + s for p in pairs for s in (p.good, p.bad)]
    if not texts:
        return []
    return sorted({int(t) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for t in ids})
