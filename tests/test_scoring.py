"""The trie scorer against the plain padded forward pass, on tiny models of three architectures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lingspace_harness.pairs import read_pairs_jsonl
from lingspace_harness.prefix_trees import build_chunks
from lingspace_harness.scoring import prefix_token_id, score_requests, sentence_requests


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def blimp_sentences(blimp_dir: Path, per_file: int = 3) -> list[str]:
    sentences = []
    for path in sorted(blimp_dir.glob("*.jsonl"))[::4]:
        for pair in read_pairs_jsonl(path)[:per_file]:
            sentences += [pair.good, pair.bad]
    return sentences


def by_hand(model, ids: list[int], n_ctx: int) -> float:
    """log p(continuation | context), one token at a time with no batching at all."""
    total = 0.0
    with torch.no_grad():
        for pos in range(n_ctx, len(ids)):
            logits = model(torch.tensor([ids[:pos]])).logits[0, -1]
            total += torch.log_softmax(logits.double(), -1)[ids[pos]].item()
    return total


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama"])
def test_trie_matches_padded_and_token_by_token(arch: str, tiny_model_factory, blimp_dir: Path) -> None:
    model, tokenizer = load(tiny_model_factory(arch))
    requests = sentence_requests(tokenizer, blimp_sentences(blimp_dir), prefix_token_id(tokenizer))
    trie = score_requests(model, requests, batch_size=16, method="trie")
    padded = score_requests(model, requests, batch_size=7, method="padded")
    assert np.abs(trie - padded).max() < 1e-4
    for i in (0, 5, len(requests) - 1):
        ctx, cont = requests[i]
        assert trie[i] == pytest.approx(by_hand(model, list(ctx) + list(cont), len(ctx)), abs=1e-4)
    assert np.all(trie < 0)


def test_longer_contexts_and_duplicates(tiny_model: Path) -> None:
    model, tokenizer = load(tiny_model)
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    requests = [
        (enc("The cat"), enc(" runs.")),
        (enc("The cat"), enc(" run.")),
        (enc("The"), enc(" cat runs.")),
        (enc("The cat"), enc(" runs.")),
        ([tokenizer.eos_token_id], enc(" Dogs bark.")),
    ]
    trie = score_requests(model, requests, method="trie")
    padded = score_requests(model, requests, method="padded")
    assert np.abs(trie - padded).max() < 1e-4
    assert trie[0] == trie[3]
    assert trie[2] < trie[0]  # also pays for " cat"


def test_trie_shares_prefixes_and_skips_leaves(tiny_model: Path, blimp_dir: Path) -> None:
    _, tokenizer = load(tiny_model)
    requests = sentence_requests(tokenizer, blimp_sentences(blimp_dir), prefix_token_id(tokenizer))
    chunks = build_chunks(requests, batch_size=1000, max_nodes=10**6)
    assert len(chunks) == 1
    tokens = sum(len(c) + len(x) for c, x in requests)
    nodes = len(chunks[0].tokens)
    assert nodes < 0.8 * tokens  # good/bad pairs share their start; all share the prefix token
    for k, req in enumerate(chunks[0].requests):  # every path spells its request
        ctx, cont = requests[req]
        assert chunks[0].tokens[chunks[0].paths[k]].tolist() == list(ctx) + list(cont)


def test_batch_size_does_not_change_scores(tiny_model: Path, blimp_dir: Path) -> None:
    model, tokenizer = load(tiny_model)
    requests = sentence_requests(tokenizer, blimp_sentences(blimp_dir, 2), prefix_token_id(tokenizer))
    scores = [score_requests(model, requests, batch_size=b, method="trie") for b in (1, 5, 64)]
    assert np.abs(scores[0] - scores[1]).max() < 1e-4 and np.abs(scores[0] - scores[2]).max() < 1e-4


class MaskBlind(torch.nn.Module):
    """A model that drops custom attention masks, as some attention kernels do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.dtype, self.device = inner.dtype, inner.device

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.inner(input_ids=input_ids, **kwargs)


def test_auto_falls_back_when_the_model_ignores_tree_masks(tiny_model: Path, blimp_dir: Path, caplog) -> None:
    model, tokenizer = load(tiny_model)
    requests = sentence_requests(tokenizer, blimp_sentences(blimp_dir, 2), prefix_token_id(tokenizer))
    blind = MaskBlind(model)
    assert (
        np.abs(score_requests(blind, requests, method="trie") - score_requests(model, requests, method="trie")).max()
        > 1e-3
    )
    auto = score_requests(blind, requests, method="auto")
    assert np.abs(auto - score_requests(model, requests, method="padded")).max() < 1e-4
    assert "ignores tree attention masks" in caplog.text


def test_prefix_token_follows_lm_eval(tiny_model: Path) -> None:
    _, tokenizer = load(tiny_model)
    assert prefix_token_id(tokenizer) == tokenizer.bos_token_id
    assert prefix_token_id(tokenizer, "5") == 5
    assert prefix_token_id(tokenizer, "<|endoftext|>") == tokenizer.eos_token_id
    ((ctx, cont),) = sentence_requests(tokenizer, ["The cat runs."], 7)
    assert ctx == [7] and tokenizer.decode(cont) == " The cat runs."
