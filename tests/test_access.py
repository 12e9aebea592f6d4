"""One model path: a model that ignores tree attention masks gets plain padded batches for
scores, gradients, FTGD steps and hidden states alike, and the numbers equal the padded path."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner

from lingspace_harness import ModelAccess
from lingspace_harness.gradients import select_parameters
from lingspace_harness.pairs import read_pairs_jsonl


class MaskBlind(torch.nn.Module):
    """A causal LM that drops any attention mask it is given (as some architectures do)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.train(inner.training)

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, attention_mask=None, **kwargs):
        return self.inner(**kwargs)


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


@pytest.fixture
def pairs(blimp_dir: Path):
    return read_pairs_jsonl(blimp_dir / "anaphor_number_agreement.jsonl")[:12]


def test_mask_blind_model_falls_back_to_padded_everywhere(tiny_model: Path, pairs, torch_threads) -> None:
    torch_threads(1)
    model, tokenizer = load(tiny_model)
    bos = tokenizer.bos_token_id
    blind = ModelAccess(MaskBlind(model), tokenizer, bos, method="auto")
    padded = ModelAccess(model, tokenizer, bos, method="padded")
    trusted = ModelAccess(MaskBlind(model), tokenizer, bos, method="trie")
    sentences = [s for p in pairs for s in (p.good, p.bad)]
    # the check matters: tree masks on a mask-blind model give other numbers
    assert np.abs(trusted.score(sentences) - padded.score(sentences)).max() > 1e-3
    params = select_parameters(model)
    grad_blind = blind.gradient_differential(pairs, params)
    assert blind.method == "padded"
    np.testing.assert_allclose(grad_blind, padded.gradient_differential(pairs, params), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blind.score(sentences), padded.score(sentences), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(blind.hidden_states(sentences[:6]), padded.hidden_states(sentences[:6]), atol=1e-6)
    # and the padded path equals the tree path on a model that honours masks
    tree = ModelAccess(model, tokenizer, bos, method="auto")
    scale = float(np.abs(grad_blind).max())  # float32 sums in another order: errors relative to the largest entry
    np.testing.assert_allclose(tree.gradient_differential(pairs, params), grad_blind, rtol=1e-4, atol=2e-6 * scale)
    assert tree.method == "trie"


def test_ftgd_steps_on_a_mask_blind_model_equal_the_padded_path(tiny_model: Path, pairs, torch_threads) -> None:
    torch_threads(1)
    model, tokenizer = load(tiny_model)
    twin = copy.deepcopy(model)
    bos = tokenizer.bos_token_id
    settings = FTGDSettings(lr=1e-2, steps=3, batch=4, early_stopping=False)
    results = []
    for net, access in ((MaskBlind(model), None), (twin, "padded")):
        inner = net.inner if isinstance(net, MaskBlind) else net
        acc = ModelAccess(net, tokenizer, bos, method=access or "auto")
        params = select_parameters(inner)
        size = sum(p.numel() for _, p in params)
        mask = np.sort(np.random.default_rng(0).choice(size, size // 50, replace=False)).astype(np.int64)
        MaskedTuner(inner, params, mask).tune(acc, pairs, [], settings)
        results.append(torch.cat([p.detach().reshape(-1) for _, p in params]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


class BlindLoader:
    """``--model blind:SPEC``: the model SPEC names, wrapped so that it ignores attention masks."""

    name = "blind"
    description = "a mask-blind wrapper around another loader's model (tests)"

    def claims(self, spec: str) -> bool:
        return False

    def load(self, spec, options):
        from lingspace_harness import load_harness
        from lingspace_harness.models import resolve_loader

        loader, rest = resolve_loader(load_harness().model_loaders, spec)
        loaded = loader.load(rest, options)
        loaded.model = MaskBlind(loaded.model)
        return loaded


class BlindPlugin:
    from lingspace_harness import hookimpl

    @hookimpl
    def lingspace_register_model_loaders(self, register):
        register(BlindLoader())


@pytest.mark.slow
def test_smollm2_through_a_mask_blind_wrapper_gives_the_same_spaces(
    capsys, monkeypatch, lingspace_plugin, smollm2_gguf: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    """In float64, so that the comparison sees the batching path and not fp32 rounding, with
    SmolLM2's RMSNorm computed in float64 too: transformers' ``LlamaRMSNorm`` casts to float32
    whatever the model's dtype, so in a "float64" model each norm rounds the backward signal to
    float32. Tree rows sum a shared prefix's gradient before that rounding, padded rows after
    it, so their gradient differentials differ by ~4e-6 (of a largest entry of 0.69), and Adam,
    which divides each entry by its own magnitude, turns that into transfer cells ~2.7e-4 apart
    after two steps (measured). With float64 norms the gradients agree to ~2e-13.
    And with ``--ftgd-mask full`` (every entry is tuned): a top-1% mask is cut among |D| values
    that tie at the stored float32 resolution, so a 1e-13 difference can swap an entry at the cut."""
    from transformers.models.llama import modeling_llama

    def rms_norm_in_input_dtype(self, hidden):
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm_in_input_dtype)
    import json

    from lingspace_harness.cli import main

    lingspace_plugin(BlindPlugin(), "blind-plugin")
    common = [
        "run",
        "--tasks",
        "blimp_anaphor_number_agreement,blimp_passive_1",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "6",
        "--metric",
        "gradsim,transfer",
        "--ftgd-steps",
        "2",
        "--ftgd-eval-every",
        "1",
        "--ftgd-lr",
        "1e-3",
        "--ftgd-batch",
        "6",
        "--analysis",
        "none",
        "--dtype",
        "float64",
        "--ftgd-mask",
        "full",
    ]
    spaces = {}
    runs = (("normal", str(smollm2_gguf), []), ("blind", f"blind:{smollm2_gguf}", []))
    for label, model, extra in runs:
        out = tmp_path / label
        assert main([*common, *extra, "--model", model, "--output", str(out)]) == 0, capsys.readouterr().err
        results = json.loads((out / "results.json").read_text())
        spaces[label] = {m: np.array(s["matrix"], dtype=float) for m, s in results["spaces"].items()}
        assert results["model"]["scoring"] == ("trie" if label == "normal" else "padded")
    # The mask-blind model (padded batches: the tiny-model test above checks that it gets
    # exactly the padded path) equals the tree path within 1e-5, the bar; the
    # measured differences are printed.
    for metric in ("gradsim", "transfer"):
        gap = np.abs(spaces["blind"][metric] - spaces["normal"][metric]).max()
        print(f"{metric}: tree vs mask-blind max |difference| {gap:.2e}")
        np.testing.assert_allclose(spaces["blind"][metric], spaces["normal"][metric], atol=1e-5, rtol=0)
