"""The stratified null of mask overlap: its expectation against simulation, and on a tiny run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from lingspace_harness_plugins.gradsim import jaccard
from lingspace_harness_plugins.overlap_null import (
    expected_intersection,
    mask_shares,
    stratified_jaccard,
    stratified_null,
    tensor_counts,
)

from lingspace_harness import ParamLayout
from lingspace_harness.cli import main

LAYOUT = ParamLayout(
    ("h.0.attn.weight", "h.0.mlp.weight", "h.1.attn.weight", "h.1.mlp.weight", "ln_f.weight"),
    ((40, 50), (80, 100), (40, 50), (80, 100), (64,)),
)
#: Per-task counts in each tensor of LAYOUT: crowded into the attention tensors, as top-k masks are.
COUNTS = np.array([[300, 100, 150, 40, 10], [250, 150, 200, 20, 0], [100, 300, 60, 90, 30]])
TASKS = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement,blimp_passive_2,blimp_npi_present_1"


def random_masks(rng: np.random.Generator, counts: np.ndarray, layout: ParamLayout) -> list[np.ndarray]:
    """Sorted flat masks with ``counts[i, j]`` entries drawn uniformly within tensor j."""
    tensors = list(zip(layout.offsets, layout.sizes))
    return [
        np.sort(np.concatenate([o + rng.choice(n, c, replace=False) for (o, n), c in zip(tensors, row)]))
        for row in counts
    ]


def test_tensor_counts_match_the_masks() -> None:
    masks = random_masks(np.random.default_rng(1), COUNTS, LAYOUT)
    np.testing.assert_array_equal(tensor_counts(masks, LAYOUT.offsets), COUNTS)
    assert tensor_counts([np.array([], dtype=np.int32)], LAYOUT.offsets).tolist() == [[0] * 5]


def test_expectation_matches_simulation() -> None:
    """E|∩| is exact (the hypergeometric mean); E[J] at the mean intersection is within 1% of
    the simulated mean Jaccard (the ratio approximation, for masks of a few hundred entries)."""
    rng = np.random.default_rng(0)
    draws = 3000
    inter = np.zeros((draws, 3, 3))
    jac = np.zeros((draws, 3, 3))
    for d in range(draws):
        masks = random_masks(rng, COUNTS, LAYOUT)
        for i in range(3):
            for j in range(i + 1, 3):
                both = np.intersect1d(masks[i], masks[j], assume_unique=True).size
                inter[d, i, j] = both
                jac[d, i, j] = both / (masks[i].size + masks[j].size - both)
    np.testing.assert_allclose(jac[-1] + jac[-1].T + np.eye(3), jaccard(masks))  # as the metric counts
    upper = np.triu_indices(3, 1)
    expected = expected_intersection(COUNTS, LAYOUT.sizes)[upper]
    se = inter.std(axis=0)[upper] / np.sqrt(draws)
    assert np.all(np.abs(inter.mean(axis=0)[upper] - expected) < 4 * se)
    np.testing.assert_allclose(stratified_jaccard(COUNTS, LAYOUT.sizes)[upper], jac.mean(axis=0)[upper], rtol=0.01)


def test_proportional_counts_give_the_uniform_null() -> None:
    """Masks spread over the tensors as the parameters are: the stratified null is k/(2-k)."""
    layout = ParamLayout(("a", "b", "c"), ((100,), (300,), (600,)))
    counts = np.array([[10, 30, 60], [10, 30, 60]])
    k = 0.1
    assert stratified_jaccard(counts, layout.sizes)[0, 1] == pytest.approx(k / (2 - k))


def test_empty_masks_stay_undefined() -> None:
    counts = np.array([[5, 0], [0, 0], [0, 0], [3, 2]])
    null = stratified_jaccard(counts, [10, 10])
    assert np.isnan(null[1, 1]) and np.isnan(null[1, 2]) and null[0, 0] == 1.0
    assert null[0, 1] == 0.0  # one empty mask: its intersection is surely empty, as observed
    empty = [np.array([], dtype=np.int64)] * 2
    out = stratified_null(empty, ParamLayout(("a",), ((10,),)))
    assert out["chance"] is None and np.isnan(out["matrix"]).all()
    assert mask_shares(empty, ParamLayout(("a",), ((10,),)))["by_type"]["a"] == {"mask": None, "params": 1.0}


def test_shares_by_type_layer_and_tensor() -> None:
    masks = random_masks(np.random.default_rng(2), COUNTS, LAYOUT)
    shares = mask_shares(masks, LAYOUT, top=2)
    total = COUNTS.sum()
    assert list(shares["by_type"]) == ["attn.weight", "mlp.weight", "ln_f.weight"]
    assert shares["by_type"]["attn.weight"]["mask"] == pytest.approx(COUNTS[:, [0, 2]].sum() / total)
    assert shares["by_type"]["attn.weight"]["params"] == pytest.approx(4000 / LAYOUT.size)
    assert list(shares["by_layer"]) == ["0", "1", "other"]
    assert sum(s["mask"] for s in shares["by_layer"].values()) == pytest.approx(1.0)
    assert list(shares["top_tensors"]) == ["h.0.attn.weight", "h.0.mlp.weight"]


def overlap_run(model: Path, blimp_dir: Path, out: Path) -> dict:
    argv = ["run", "--model", str(model), "--tasks", TASKS, "--data-dir", str(blimp_dir), "--limit", "12"]
    argv += ["--metric", "overlap", "--split-half", "--analysis", "none", "--output", str(out), "-q"]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_a_run_records_the_null_between_chance_and_observed(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    space = overlap_run(tiny_model, blimp_dir, tmp_path / "new")["spaces"]["overlap"]
    assert {"k", "chance", "null", "excess", "mask_shares"} <= set(space)
    null = space["null"]
    assert null["kind"] == "stratified" and set(null["split_half"]) == {"a", "b"}
    observed, expected = np.array(space["matrix"], dtype=float), np.array(null["matrix"], dtype=float)
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(np.diag(expected), 1) and np.allclose(expected, expected.T)
    assert null["chance"] == pytest.approx(expected[off].mean())
    assert space["chance"] < null["chance"] < observed[off].mean()
    np.testing.assert_allclose(np.array(space["excess"], dtype=float), observed - expected)
    for half in ("a", "b"):
        assert space["chance"] < null["split_half"][half]["chance"]
        assert np.array(null["split_half"][half]["matrix"]).shape == (4, 4)
    assert sum(s["mask"] for s in space["mask_shares"]["by_layer"].values()) == pytest.approx(1.0)


def test_a_run_without_the_null_still_loads(
    tiny_model_factory: Callable[[str], Path], blimp_dir: Path, tmp_path: Path
) -> None:
    """Results written before the null (no ``null``, ``excess``, ``mask_shares``) still report,
    and compare beside a run that has it."""
    overlap_run(tiny_model_factory("gpt2"), blimp_dir, tmp_path / "new")
    old = tmp_path / "old"
    results = overlap_run(tiny_model_factory("llama"), blimp_dir, old)
    for key in ("null", "excess", "mask_shares"):
        del results["spaces"]["overlap"][key]
    (old / "results.json").write_text(json.dumps(results))
    assert main(["report", str(old), "-q"]) == 0
    argv = ["compare", str(tmp_path / "new"), str(old), "--permutations", "9", "--bootstraps", "10"]
    assert main([*argv, "--output", str(tmp_path / "cmp"), "-q"]) == 0
