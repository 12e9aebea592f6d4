"""Tiny random causal LMs with an offline-trained tokenizer, for tests and examples."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

ARCHITECTURES = ("gpt2", "gpt_neox", "llama")
SPECIAL = "<|endoftext|>"
_WORDS = (
    "the a some every no this these those many few all who what that whom".split()
    + "cat cats dog dogs girl girls boy boys man men woman women child children teacher"
    " teachers doctor doctors book books car cars house houses idea ideas".split()
    + "is are was were has have had does do did can will would should might must".split()
    + "see sees saw seen like likes liked eat eats ate eaten run runs ran go goes went"
    " gone think thinks thought said says say fix fixes fixed know knew known".split()
    + "herself himself themselves itself ever also not only never yet there it".split()
    + "big small red old new happy sad quickly slowly and or but because if while".split()
)


def corpus(n: int = 4000) -> list[str]:
    """Deterministic pseudo-sentences over a small English vocabulary."""
    cycle = itertools.cycle(_WORDS)
    out = []
    for i in range(n):
        length = 3 + i % 9
        words = [next(cycle) for _ in range(length)]
        words = words[i % 7 :] + words[: i % 7]
        out.append(" ".join(words).capitalize() + ("." if i % 5 else "?"))
    return out


def build_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer trained here, offline; BOS = EOS = ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[SPECIAL], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL)


def build_tiny_model(path: str | Path, arch: str = "gpt2", seed: int = 0) -> Path:
    """Save a tiny randomly initialised model of ``arch`` and its tokenizer under ``path``.

    The weights are drawn with a large scale so that log-probs differ clearly between
    sentences (margins far from ties).
    """
    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    path = Path(path)
    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model: Any
    if arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab, n_positions=128, n_embd=32, n_layer=2, n_head=2, initializer_range=0.3, **special
            )
        )
    elif arch == "gpt_neox":
        model = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=128,
                initializer_range=0.3,
                **special,
            )
        )
    else:
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                max_position_embeddings=128,
                initializer_range=0.3,
                **special,
            )
        )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
