"""Reductions at memory speed: the top-k selection, the projection's compact plan, the streamed
Jaccard, and each training pair's gradient computed once (the whole differential from its halves)."""

from __future__ import annotations

import json
from pathlib import Path

import lingspace_harness_plugins.gradsim as gradsim
import numpy as np
import pytest
import torch

import lingspace_harness.gradients as gradients
import lingspace_harness.selection as selection
from lingspace_harness import MinimalPair, load_harness
from lingspace_harness.cli import main
from lingspace_harness.gradient_cache import halves
from lingspace_harness.gradients import gradient_differential, gradient_differentials, layout_of, select_parameters
from lingspace_harness.scoring import sentence_requests
from lingspace_harness.selection import index_dtype, largest_magnitudes


def argpartition_mask(x: np.ndarray, n: int) -> np.ndarray:
    """The selection as it was: an argpartition of |x| over the whole vector."""
    return np.sort(np.argpartition(np.abs(x), x.size - n)[x.size - n :])


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Blocks and a sample far smaller than the vectors, so every path of the selection runs."""
    monkeypatch.setattr(selection, "BLOCK", 1000)
    monkeypatch.setattr(selection, "SAMPLE", 256)


@pytest.mark.parametrize("n", [1, 7, 500, 9_999, 10_000])
def test_selection_equals_argpartition_without_ties(small_blocks, n: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.permutation(10_000) + 1.0) ** 3 * rng.choice([-1e-9, 1e-9], 10_000)  # heavy-tailed, distinct
    x = x.astype(np.float32)
    assert np.unique(np.abs(x)).size == x.size  # no ties: argpartition's choice is unique
    chosen = largest_magnitudes(x, n)
    assert chosen.dtype == np.int32
    np.testing.assert_array_equal(chosen, argpartition_mask(x, n))


def test_ties_at_the_threshold_go_to_the_lowest_indices(small_blocks) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-6, 7, size=20_000).astype(np.float32)  # 7 magnitudes: every cut falls in a tie
    x[rng.choice(x.size, 50, replace=False)] = -0.0
    for n in (1, 100, 3_000, 15_000, 20_000):
        chosen = largest_magnitudes(x, n)
        stable = np.sort(np.argsort(-np.abs(x), kind="stable")[:n])  # by |x|, then by index
        np.testing.assert_array_equal(chosen, stable)
        # the same set as today's argpartition wherever it is determined: everything above the cut
        threshold = np.abs(x)[chosen].min()
        assert set(np.flatnonzero(np.abs(x) > threshold)) <= set(argpartition_mask(x, n).tolist())
        assert set(np.flatnonzero(np.abs(x) > threshold)) <= set(chosen.tolist())


def test_a_misleading_sample_still_gives_the_exact_selection(small_blocks) -> None:
    """The sampled entries are the large ones: every bracket from the sample is too high, and the
    selection falls back to all entries rather than return too few."""
    x = np.random.default_rng(4).random(20_000).astype(np.float32)
    x[:: 20_000 // 256] += 10.0
    np.testing.assert_array_equal(largest_magnitudes(x, 1000), argpartition_mask(x, 1000))


def test_selection_edges(small_blocks) -> None:
    x = np.array([0.5, -np.inf, np.nan, -0.0, 0.0, 2.0], dtype=np.float32)
    assert largest_magnitudes(x, 2).tolist() == [1, 2]  # NaN above infinity, as np.abs + argpartition
    assert largest_magnitudes(x, 0).tolist() == [] and largest_magnitudes(x, 6).tolist() == list(range(6))
    with pytest.raises(ValueError):
        largest_magnitudes(x, 7)
    with pytest.raises(TypeError):
        largest_magnitudes(x.astype(np.float64), 1)
    assert index_dtype(2**31 - 1) == np.int32 and index_dtype(2**31) == np.int64


def drawn_projection(grad: np.ndarray, sizes: list[int], dim: int, seed: int) -> np.ndarray:
    """The count-sketch as first written: int64 buckets and float32 signs drawn in one go."""
    out, offset = [], 0
    for i, size in enumerate(sizes):
        rng = np.random.default_rng([seed, i, dim])
        bucket, sign = rng.integers(0, dim, size=size), rng.choice(np.array([-1.0, 1.0], np.float32), size)
        piece = grad[offset : offset + size].astype(np.float64) * sign
        out.append(np.bincount(bucket, weights=piece, minlength=dim))
        offset += size
    return np.concatenate(out).astype(np.float32)


def test_projection_plan_is_compact_and_the_same_sketch() -> None:
    projected = load_harness().gradient_strategies.get("projected")
    layout = layout_of(
        [
            ("a.layers.0.w", torch.zeros(1100, 1000)),
            ("a.layers.0.b", torch.zeros(70)),
            ("a.layers.1.w", torch.zeros(3, 5000)),
        ]
    )  # the first crosses a chunk of draws
    grad = np.random.default_rng(5).normal(size=layout.size).astype(np.float32)
    for dim, seed in ((64, 0), (1024, 3)):
        options = projected.Options(projection_dim=dim, seed=seed)
        ours = projected.reduce(grad, layout, options)
        np.testing.assert_allclose(ours, drawn_projection(grad, layout.sizes, dim, seed), rtol=1e-6, atol=1e-6)
        plan = projected._plan(layout, dim, seed)
        assert plan.dtype == np.uint16 and plan.nbytes == 2 * layout.size  # not 12 bytes an entry
    assert projected._plan(layout, 40_000, 0).dtype == np.uint32  # 2 * dim no longer fits 16 bits


def test_streamed_jaccard_equals_one_block(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    masks = [np.sort(rng.choice(5000, size=s, replace=False)).astype(np.int32) for s in (0, 1, 50, 700, 2500)]
    masks.append(np.array([63, 64, 4999], dtype=np.int32))
    whole = gradsim.jaccard(masks)
    monkeypatch.setattr(gradsim, "BITS", 128)  # 40 blocks
    np.testing.assert_array_equal(gradsim.jaccard(masks), whole)


PAIRS = [
    MinimalPair(str(i), good, bad)
    for i, (good, bad) in enumerate(
        [
            ("The cats are happy.", "The cats is happy."),
            ("The dog sees himself.", "The dog sees themselves."),
            ("Who did the girl see?", "Who did the girl see him?"),
            ("Some boys were not here.", "Some boys was not here."),
            ("A man has left.", "A man have left."),
        ]
    )
]


def test_a_group_is_summed_as_if_alone_and_the_halves_add_up(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    params, prefix = select_parameters(model), tokenizer.bos_token_id
    first, second = halves(PAIRS)
    a, b = gradient_differentials(model, tokenizer, [first, second], prefix, params, batch_size=4)
    np.testing.assert_array_equal(a, gradient_differential(model, tokenizer, first, prefix, params, batch_size=4))
    np.testing.assert_array_equal(b, gradient_differential(model, tokenizer, second, prefix, params, batch_size=4))
    direct = gradient_differential(model, tokenizer, PAIRS, prefix, params, batch_size=4)
    scale = np.abs(direct).max()
    assert scale > 0 and np.abs((a + b) - direct).max() < 1e-6 * scale  # float32 rounding only


def test_a_one_pair_split_has_an_empty_half_that_sums_to_zero(tiny_model: Path) -> None:
    """``--limit 1``: a training split of one pair halves into none and one (issue 33: the empty
    half once reached the tokenizer with no sentences and raised IndexError)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    params, prefix = select_parameters(model), tokenizer.bos_token_id
    assert sentence_requests(tokenizer, [], prefix) == []
    first, second = halves(PAIRS[:1])
    assert (first, second) == ([], PAIRS[:1])
    a, b = gradient_differentials(model, tokenizer, [first, second], prefix, params, batch_size=4)
    assert not a.any()
    np.testing.assert_array_equal(b, gradient_differential(model, tokenizer, second, prefix, params, batch_size=4))


TASKS = "blimp_anaphor_gender_agreement,blimp_passive_2,blimp_npi_present_1"


def split_half_run(model: Path, blimp_dir: Path, out: Path) -> dict:
    assert (
        main(
            [
                "run",
                "--model",
                str(model),
                "--tasks",
                TASKS,
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "9",
                "--metric",
                "gradsim,overlap",
                "--gradsim-strategy",
                "full",
                "--split-half",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    return json.loads((out / "results.json").read_text())


def stored(out: Path, strategy: str, task: str, variant: str) -> np.ndarray:
    for key in (out / "units" / f"gradient-{strategy}").glob(f"{task}-*.npy.key.json"):
        if json.loads(key.read_text()).get("variant", "") == variant:
            return np.load(str(key)[: -len(".key.json")])
    raise AssertionError(f"no {strategy} unit of {task} ({variant or 'the run'})")


def test_split_half_differentiates_each_pair_once(
    monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    counted: list[int] = []
    original = gradients._differential
    monkeypatch.setattr(gradients, "_differential", lambda *a, **k: counted.append(len(a[2])) or original(*a, **k))
    out = tmp_path / "out"
    results = split_half_run(tiny_model, blimp_dir, out)
    assert sum(counted) == 3 * 9 and sorted(counted) == [4, 4, 4, 5, 5, 5]  # 9 training pairs a task, once
    for task in results["tasks"]:
        half_a, half_b = (stored(out, "full", task, v) for v in ("half-a", "half-b"))
        np.testing.assert_array_equal(stored(out, "full", task, ""), half_a + half_b)
        mask = stored(out, "topk", task, "")
        assert mask.dtype == np.int32 and np.all(np.diff(mask) > 0)
    # a run killed after a task's halves were stored, before its whole differential: resumed, the same
    for unit in (out / "units" / "gradient-full").glob("*.npy.key.json"):
        if json.loads(unit.read_text()).get("variant", "") == "" and unit.name.startswith("blimp_passive_2-"):
            unit.unlink()
    counted.clear()
    resumed = split_half_run(tiny_model, blimp_dir, out)
    assert sorted(counted) == [4, 5]  # only that task, its pairs once
    assert resumed["spaces"] == results["spaces"]
