"""FTGD's sparse Adam: the same trajectory as dense torch.optim.Adam restricted to the mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner, pair_loss

from lingspace_harness import MinimalPair, ModelAccess
from lingspace_harness.gradients import layout_of, select_parameters

PAIRS = [
    MinimalPair("0", "The cats are happy.", "The cats is happy."),
    MinimalPair("1", "The dog sees himself.", "The dog sees themselves."),
    MinimalPair("2", "Who did the girl see?", "Who did the girl see him?"),
    MinimalPair("3", "Every man has a car.", "Every man have a car."),
    MinimalPair("4", "These books were old.", "These book were old."),
]
SETTINGS = FTGDSettings(lr=1e-2, steps=10, batch=3, early_stopping=False, seed=1)


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def flat(params) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for _, p in params]).numpy().copy()


def spread_mask(params, per_tensor: int = 7) -> np.ndarray:
    """A few random entries of every other tensor: a mask spanning many tensors, some left out."""
    rng = np.random.default_rng(0)
    offsets = layout_of(params).offsets
    chosen = [
        offsets[i]
        + rng.choice(offsets[i + 1] - offsets[i], min(per_tensor, offsets[i + 1] - offsets[i]), replace=False)
        for i in range(0, len(params), 2)
    ]
    return np.sort(np.concatenate(chosen))


def dense_reference(model, tokenizer, params, mask: np.ndarray, settings: FTGDSettings) -> list[np.ndarray]:
    """The previous method: a hook zeroes unmasked gradient entries, torch.optim.Adam steps whole tensors."""
    offsets = layout_of(params).offsets
    tensors, hooks = [], []
    for p in model.parameters():
        p.requires_grad_(False)
    for i, (_, p) in enumerate(params):
        local = mask[(mask >= offsets[i]) & (mask < offsets[i + 1])] - offsets[i]
        if local.size:
            entry = torch.zeros(p.numel(), dtype=torch.bool)
            entry[torch.from_numpy(local)] = True
            p.requires_grad_(True)
            hooks.append(p.register_hook(lambda g, m=entry.reshape(p.shape): g * m))  # noqa: B008
            tensors.append(p)
    optimizer = torch.optim.Adam(tensors, lr=settings.lr, weight_decay=0.0)
    rng, order, trajectory = np.random.default_rng(settings.seed), [], []
    for _ in range(settings.steps):  # the same batches as MaskedTuner.tune
        if len(order) < settings.batch:
            order += rng.permutation(len(PAIRS)).tolist()
        batch = [PAIRS[j] for j in order[: settings.batch]]
        del order[: settings.batch]
        optimizer.zero_grad()
        pair_loss(ModelAccess(model, tokenizer, tokenizer.bos_token_id), batch).backward()
        optimizer.step()
        trajectory.append(flat(params))
    for hook in hooks:
        hook.remove()
    return trajectory


def tune_recording(model, tokenizer, params, mask, settings, validation=(), masked_weights=True):
    """Run MaskedTuner.tune, recording the parameters after every step and checking that only
    tensors with a masked entry ever get a gradient, and a hooked linear weight none from autograd."""
    tuner = MaskedTuner(model, params, mask, masked_weights=masked_weights)
    autograd = {id(tuner.params[i]) for i in tuner.trainable if i not in tuner.hooked}
    trajectory: list[np.ndarray] = []

    def after_step(_: int) -> None:
        for p in model.parameters():
            assert p.requires_grad == (id(p) in autograd)
            assert (p.grad is None) == (id(p) not in autograd)
        trajectory.append(flat(params))

    report = tuner.tune(
        ModelAccess(model, tokenizer, tokenizer.bos_token_id), PAIRS, list(validation), settings, progress=after_step
    )
    return tuner, report, trajectory


@pytest.mark.parametrize("kind,masked_weights", [("gpt2", True), ("llama", True), ("gpt2", False)])
def test_sparse_adam_follows_dense_adam_on_the_mask(tiny_model_factory, kind: str, masked_weights: bool) -> None:
    """Both ways to a masked linear weight's gradient (its masked entries alone, or autograd's
    dense one) follow dense Adam to float rounding; GPT-2's linear layers are ``Conv1D``s
    (weights stored transposed), Llama's ``nn.Linear``s."""
    tiny_model = tiny_model_factory(kind)
    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    mask = spread_mask(params)
    base = flat(params)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tuner, report, ours = tune_recording(model, tokenizer, params, mask, SETTINGS, masked_weights=masked_weights)
    assert report.steps == report.best_step == 10 and len(tuner.trainable) >= 6
    assert (len(tuner.hooked) >= 3) == masked_weights  # most masked tensors are linear weights
    assert all(p.grad is None for p in model.parameters())  # gradients are not left behind
    tuned = flat(params)
    tuner.restore()
    for n, p in model.named_parameters():  # exactly the base values, everywhere
        assert torch.equal(p, before[n])

    reference_model, _ = load(tiny_model)
    reference = dense_reference(reference_model, tokenizer, select_parameters(reference_model), mask, SETTINGS)
    for step, (a, b) in enumerate(zip(ours, reference), start=1):
        assert np.abs(a - b).max() < 1e-6, f"step {step}"
    changed = np.flatnonzero(tuned != base)
    assert np.isin(changed, mask).all() and changed.size > 0.9 * mask.size
    assert np.abs(tuned - base).max() > 0.05  # the trajectory moved far enough to tell methods apart


def test_early_stopping_keeps_the_best_state_exactly(tiny_model: Path) -> None:
    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    mask = spread_mask(params)
    base = flat(params)
    settings = FTGDSettings(lr=0.5, steps=12, batch=3, eval_every=2, patience=2, seed=1)
    tuner, report, trajectory = tune_recording(model, tokenizer, params, mask, settings, validation=PAIRS[:3])
    assert report.best_step == report.validation_margins.index(max(report.validation_margins)) * 2
    best = trajectory[report.best_step - 1] if report.best_step else base
    assert np.array_equal(flat(params), best)
    tuner.restore()
    assert np.array_equal(flat(params), base)


def test_full_tuning_still_uses_every_entry(tiny_model: Path) -> None:
    model, tokenizer = load(tiny_model)
    params = select_parameters(model)
    base = flat(params)
    tuner, report, _ = tune_recording(
        model, tokenizer, params, None, FTGDSettings(lr=1e-2, steps=2, batch=3, early_stopping=False)
    )
    assert np.mean(flat(params) != base) > 0.5
    tuner.restore()
    assert np.array_equal(flat(params), base)


def test_empty_mask_is_refused(tiny_model: Path) -> None:
    model, tokenizer = load(tiny_model)
    with pytest.raises(ValueError, match="no parameter entries"):
        MaskedTuner(model, select_parameters(model), np.array([], dtype=np.int64)).tune(
            ModelAccess(model, tokenizer, tokenizer.bos_token_id), PAIRS, [], SETTINGS
        )


def test_an_unsorted_mask_with_repeats_tunes_the_same_entries(tiny_model: Path) -> None:
    model, _ = load(tiny_model)
    params = select_parameters(model)
    mask = spread_mask(params)
    shuffled = np.random.default_rng(0).permutation(np.concatenate([mask, mask[:5]]))
    a, b = MaskedTuner(model, params, mask), MaskedTuner(model, params, shuffled)
    assert a.trainable == b.trainable
    assert all(torch.equal(a.indices[i], b.indices[i]) for i in a.trainable)
