"""CKA: the closed forms, the unbiased HSIC against its U-statistic definition, and the metric."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from lingspace_harness_plugins.cka import _unbiased_hsic, debiased_cka, linear_cka

from lingspace_harness.cli import main

rng = np.random.default_rng(0)


def test_linear_cka_invariances_and_gram_form() -> None:
    x = rng.normal(size=(30, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x @ q) == pytest.approx(1)
    assert linear_cka(x, 3 * x + 1) == pytest.approx(1)
    y = rng.normal(size=(30, 5))
    h = np.eye(30) - 1 / 30
    kx, ly = h @ x @ x.T @ h, h @ y @ y.T @ h
    assert linear_cka(x, y) == pytest.approx(np.trace(kx @ ly) / np.sqrt(np.trace(kx @ kx) * np.trace(ly @ ly)))
    assert 0 < linear_cka(x, y) < 1


def test_unbiased_hsic_is_the_u_statistic() -> None:
    n = 6
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    kx, ly = x @ x.T, y @ y.T
    total = 0.0
    tuples = list(itertools.permutations(range(n), 4))
    for i, j, q, r in tuples:
        total += kx[i, j] * ly[i, j] + kx[i, j] * ly[q, r] - 2 * kx[i, j] * ly[i, q]
    assert _unbiased_hsic(kx, ly) == pytest.approx(total / len(tuples))


def test_debiased_cka_removes_the_small_sample_bias() -> None:
    x, y = rng.normal(size=(20, 200)), rng.normal(size=(20, 200))
    assert debiased_cka(x, x) == pytest.approx(1)
    assert linear_cka(x, y) > 0.5  # independent, yet biased CKA is high with few examples
    assert abs(debiased_cka(x, y)) < 0.1


def test_cka_metric(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    tasks = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement,blimp_passive_2"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                tasks,
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "12",
                "--metric",
                "cka",
                "--ftgd-lr",
                "1e-2",
                "--ftgd-steps",
                "4",
                "--ftgd-eval-every",
                "100",
                "--cka-reference",
                str(tiny_model),
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    space = json.loads((tmp_path / "results.json").read_text())["spaces"]["cka"]
    m = np.array(space["matrix"], dtype=float)  # null (undefined) -> NaN
    assert m.shape == (3, 3) and np.allclose(m, m.T, equal_nan=True)
    # a source whose tuning left the last layer unchanged (early stopping) has a constant change:
    # its CKA with anything is undefined (null), never 0
    moved = ~np.isnan(np.diag(m))
    assert np.isnan(m[~moved]).all() and np.isnan(m[:, ~moved]).all()
    for task, ok in zip(space["tasks"], moved):
        assert ok or space["before_after"][task]["linear"][-1] == pytest.approx(1)
    sub = m[np.ix_(moved, moved)]
    assert moved.any() and np.allclose(np.diag(sub), 1) and ((sub >= -1e-9) & (sub <= 1 + 1e-9)).all()
    assert space["undefined"]["count"] == np.isnan(m).sum()
    assert moved.all() or "constant" in space["undefined"]["reason"]
    assert set(space["per_layer"]) == {"linear", "debiased"} and len(space["per_layer"]["linear"]) == 3
    assert space["probe_size"] == 3 * 12
    for layers in space["before_after"].values():
        assert layers["linear"][0] == pytest.approx(1)  # embeddings are not tuned
    # early stopping may keep a source's untuned state, but tuning moved some block somewhere
    assert min(min(layers["linear"][1:]) for layers in space["before_after"].values()) < 1 - 1e-6
    assert space["reference"]["linear"] == pytest.approx([1, 1, 1])  # the model against itself
