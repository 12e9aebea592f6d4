"""Gradient differentials, strategies, the gradsim/overlap maths, and FTGD's mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner
from lingspace_harness_plugins.gradsim import centred_cosine, cosine, gram_by_layer, jaccard

from lingspace_harness import MinimalPair, ModelAccess, load_harness
from lingspace_harness.gradients import gradient_differential, layout_of, select_parameters
from lingspace_harness.scoring import score_requests, sentence_requests

PAIRS = [
    MinimalPair("0", "The cats are happy.", "The cats is happy."),
    MinimalPair("1", "The dog sees himself.", "The dog sees themselves."),
    MinimalPair("2", "Who did the girl see?", "Who did the girl see him?"),
]


def load(path: Path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(path)


def objective(model, tokenizer, pairs, method="padded") -> float:
    requests = sentence_requests(tokenizer, [s for p in pairs for s in (p.good, p.bad)], tokenizer.bos_token_id)
    scores = score_requests(model, requests, method=method)
    return float(np.sum(scores[0::2] - scores[1::2]))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_differential_matches_finite_differences(arch, tiny_model_factory) -> None:
    model, tokenizer = load(tiny_model_factory(arch), torch.float64)
    params = select_parameters(model)
    grad = gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, params)
    layout = layout_of(params)
    rng = np.random.default_rng(0)
    eps = 1e-3  # llama's rotary tables stay float32, so smaller steps drown in rounding
    for flat in rng.choice(layout.size, 6, replace=False).tolist() + [int(np.argmax(np.abs(grad)))]:
        i = int(np.searchsorted(layout.offsets, flat, side="right") - 1)
        param, local = params[i][1], flat - layout.offsets[i]
        with torch.no_grad():
            original = param.view(-1)[local].item()
            param.view(-1)[local] = original + eps
            up = objective(model, tokenizer, PAIRS)
            param.view(-1)[local] = original - eps
            down = objective(model, tokenizer, PAIRS)
            param.view(-1)[local] = original
        assert grad[flat] == pytest.approx((up - down) / (2 * eps), rel=2e-3, abs=5e-3)


def test_differential_matches_plain_autograd(tiny_model) -> None:
    """The trie (shared prefixes, cancelled tokens left out) gives the same vector as a plain
    padded forward with every token in the loss."""
    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    ours = gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, params, batch_size=2)
    model.zero_grad()
    loss = 0.0
    for pair in PAIRS:
        for sentence, sign in ((pair.good, 1.0), (pair.bad, -1.0)):
            ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(" " + sentence)["input_ids"]])
            logp = torch.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).sum()
            loss = loss + sign * logp
    loss.backward()
    plain = torch.cat([p.grad.reshape(-1) for _, p in params]).numpy()
    assert np.abs(ours - plain).max() < 1e-4 * max(1.0, np.abs(plain).max())


def test_parameter_selection_leaves_out_embeddings(tiny_model) -> None:
    model, _ = load(tiny_model)
    names = [n for n, _ in select_parameters(model)]
    assert not any("wte" in n or "wpe" in n or "lm_head" in n for n in names)
    with_emb = [n for n, _ in select_parameters(model, include_embeddings=True)]
    assert any("wte" in n for n in with_emb) and len(with_emb) > len(names)
    layers = layout_of(select_parameters(model)).layers()
    assert list(layers)[:2] == ["0", "1"] and "other" in layers  # the final layer norm


def test_gradients_leave_the_model_as_it_was(tiny_model) -> None:
    model, tokenizer = load(tiny_model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, select_parameters(model))
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None and p.requires_grad == flags[n]


def test_strategies() -> None:
    harness = load_harness()
    full, topk, projected = (harness.gradient_strategies.get(n) for n in ("full", "topk", "projected"))
    layout = layout_of([("a.layers.0.w", torch.zeros(300, 40)), ("a.layers.1.w", torch.zeros(200))])
    rng = np.random.default_rng(1)
    vectors = [rng.normal(size=layout.size).astype(np.float32) for _ in range(4)]
    vectors[1] = vectors[0] + 0.3 * vectors[1]  # correlated pair
    mask = topk.reduce(vectors[0], layout, topk.Options(topk=0.05))
    assert mask.size == round(0.05 * layout.size) and np.all(np.diff(mask) > 0)
    threshold = np.sort(np.abs(vectors[0]))[-mask.size]
    assert np.all(np.abs(vectors[0][mask]) >= threshold)

    assert np.array_equal(full.reduce(vectors[0], layout, full.Options()), vectors[0])
    assert full.layer_slices(layout, full.Options()) == {"0": [(0, 12000)], "1": [(12000, 12200)]}
    exact = cosine(sum(gram_by_layer(vectors, layout.layers()).values()))
    options = projected.Options(projection_dim=2048)
    sketched = [projected.reduce(v, layout, options) for v in vectors]
    assert sketched[0].size == 2 * 2048
    approx = cosine(sum(gram_by_layer(sketched, projected.layer_slices(layout, options)).values()))
    assert np.abs(approx - exact).max() < 0.1
    assert np.array_equal(sketched[0], projected.reduce(vectors[0], layout, options))  # seeded


def test_cosine_jaccard_and_gram_by_hand() -> None:
    vectors = [np.array([1.0, 0, 0, 2]), np.array([2.0, 0, 0, 4]), np.array([0.0, 3, 0, 0])]
    slices = {"0": [(0, 2)], "1": [(2, 4)]}
    grams = gram_by_layer(vectors, slices)
    assert grams["0"].tolist() == [[1, 2, 0], [2, 4, 0], [0, 0, 9]]
    total = sum(grams.values())
    assert cosine(total).round(12).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    x = np.stack(vectors)
    centred = x - x.mean(0)
    expected = centred @ centred.T / np.outer(np.linalg.norm(centred, axis=1), np.linalg.norm(centred, axis=1))
    assert np.allclose(centred_cosine(total), expected)
    masks = [np.array([1, 2, 3]), np.array([2, 3, 4, 5]), np.array([9])]
    assert jaccard(masks).tolist() == [[1, 2 / 5, 0], [2 / 5, 1, 0], [0, 0, 1]]


def test_jaccard_equals_set_intersections() -> None:
    """The bitset Jaccard against sorted-set intersections, empty masks and index 63/64 included."""
    rng = np.random.default_rng(1)
    masks = [np.sort(rng.choice(1000, size=s, replace=False)) for s in (0, 0, 5, 100, 999, 1000, 1)]
    masks += [np.array([63, 64]), np.array([0, 64, 127, 128])]
    expected = np.diag([1.0 if m.size else np.nan for m in masks])
    for i, a in enumerate(masks):
        for j, b in enumerate(masks):
            if i != j:
                union = len(set(a) | set(b))
                expected[i, j] = len(set(a) & set(b)) / union if union else np.nan
    np.testing.assert_array_equal(jaccard(masks), expected)


def test_random_masks_overlap_at_chance() -> None:
    rng = np.random.default_rng(0)
    n, k = 1_000_000, 0.02
    masks = [np.sort(rng.choice(n, int(k * n), replace=False)) for _ in range(6)]
    off = jaccard(masks)[~np.eye(6, dtype=bool)]
    assert off.mean() == pytest.approx(k / (2 - k), rel=0.05)


def test_ftgd_changes_only_masked_entries_and_restores(tiny_model) -> None:
    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    grad = gradient_differential(model, tokenizer, PAIRS, tokenizer.bos_token_id, params)
    mask = np.sort(np.argpartition(np.abs(grad), grad.size - 50)[-50:])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    access = ModelAccess(model, tokenizer, tokenizer.bos_token_id)
    margin0 = access.mean_margin(PAIRS)
    tuner = MaskedTuner(model, params, mask)
    report = tuner.tune(access, PAIRS, [], FTGDSettings(lr=1e-2, steps=5, batch=2))
    assert report.steps == 5
    after = torch.cat([p.detach().reshape(-1) for _, p in params]).numpy()
    base = torch.cat([before[n].reshape(-1) for n, _ in params]).numpy()
    changed = np.flatnonzero(after != base)
    assert changed.size > 0 and np.isin(changed, mask).all()
    for n, p in model.named_parameters():  # embeddings and the rest untouched
        if n not in dict(params):
            assert torch.equal(p, before[n])
    assert access.mean_margin(PAIRS) > margin0
    tuner.restore()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])


def test_projected_gradsim_tracks_full_on_a_small_model(tiny_model, blimp_dir) -> None:
    from lingspace_harness.pairs import read_pairs_jsonl

    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    layout = layout_of(params)
    grads = [
        gradient_differential(
            model, tokenizer, read_pairs_jsonl(blimp_dir / f"{name}.jsonl")[:20], tokenizer.bos_token_id, params
        )
        for name in ("anaphor_gender_agreement", "anaphor_number_agreement", "passive_2", "npi_present_1")
    ]
    projected = load_harness().gradient_strategies.get("projected")
    options = projected.Options(projection_dim=4096)
    exact = cosine(sum(gram_by_layer(grads, layout.layers()).values()))
    sketches = [projected.reduce(g, layout, options) for g in grads]
    approx = cosine(sum(gram_by_layer(sketches, projected.layer_slices(layout, options)).values()))
    assert np.abs(approx - exact).max() < 0.05
    assert np.abs(exact - np.eye(4)).max() > 0.05  # the tasks' differentials are not orthogonal


def test_gram_reads_stored_vectors_in_blocks(tmp_path, monkeypatch) -> None:
    import lingspace_harness_plugins.gradsim as gradsim

    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=1000).astype(np.float16) for _ in range(3)]
    stored = []
    for i, v in enumerate(vectors):
        np.save(tmp_path / f"{i}.npy", v)
        stored.append(np.load(tmp_path / f"{i}.npy", mmap_mode="r"))
    monkeypatch.setattr(gradsim, "BLOCK", 64)
    slices = {"a": [(0, 300)], "b": [(300, 1000)]}
    from_disk = gram_by_layer(stored, slices)
    in_memory = gram_by_layer([v.astype(np.float64) for v in vectors], slices)
    for layer in slices:
        assert np.allclose(from_disk[layer], in_memory[layer])
    x = np.stack(vectors).astype(np.float64)
    assert np.allclose(sum(from_disk.values()), x @ x.T)
