"""The signed-mask probe ``signmask`` and its ``signed-sketch`` strategy on a tiny model: the exact
form is P[s, t] = sum over M_s of sign(D_s) D_t / n_t by hand, the sketch tracks it, the sketch's
R D half is ``projected``'s sketch and its R s half the sketch of the dense sign mask."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lingspace_harness_plugins.signed_mask as signed_mask
import numpy as np
import pytest
import torch
from lingspace_harness_plugins.signed_mask import SignedSketch, SignedSketchOptions, SignMask, SignMaskOptions
from lingspace_harness_plugins.strategies import Projected, ProjectedOptions

from lingspace_harness import ReducesOnDevice, RunConfig, load_harness
from lingspace_harness.cli import main
from lingspace_harness.gradients import ParamLayout, gradient_differential
from lingspace_harness.runner import prepare
from lingspace_harness.selection import largest_magnitudes
from lingspace_harness.tasks import task_delimiter

TASKS = ["blimp_anaphor_gender_agreement", "blimp_anaphor_number_agreement", "blimp_passive_2"]
K = ["--topk", "0.05", "--signed-topk", "0.05"]
LAYOUT = ParamLayout(("h.0.w", "h.0.b", "h.1.w"), ((300, 70), (70,), (64, 64)))


def run(model: Path, blimp_dir: Path, out: Path, *extra: str) -> dict:
    args = ["run", "--model", str(model), "--tasks", ",".join(TASKS), "--data-dir", str(blimp_dir), "-q"]
    args += ["--limit", "12", "--metric", "signmask", "--output", str(out), "--analysis", "none", *K, *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def space(results: dict) -> np.ndarray:
    return np.array(results["spaces"]["signmask"]["matrix"], dtype=float)


def by_hand(model: Path, blimp_dir: Path, out: Path, fraction: float) -> np.ndarray:
    """P from each task's training differential (``gradient_differential``), with numpy."""
    config = RunConfig(model=str(model), tasks=TASKS, metrics=["signmask"], data_dir=blimp_dir, limit=12, output=out)
    ctx = prepare(load_harness(), config)
    grads, n_train = [], []
    for t in TASKS:
        data = ctx.data[t]
        grads.append(
            gradient_differential(
                ctx.model.model,
                ctx.model.tokenizer,
                data.train,
                ctx.prefix_id,
                ctx.gradient_params,
                delimiter=task_delimiter(data.task),
            )
        )
        n_train.append(len(data.train))
    p = np.zeros((len(TASKS), len(TASKS)))
    for s, source in enumerate(grads):
        mask = largest_magnitudes(source, max(1, int(round(fraction * source.size))))
        signs = np.sign(source[mask]).astype(np.float64)
        for t, target in enumerate(grads):
            p[s, t] = signs @ target[mask].astype(np.float64) / n_train[t]
    return p


@pytest.fixture
def probes(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> dict:
    """The exact and the sketched probe of one run each, and the space by hand."""
    full = run(tiny_model, blimp_dir, tmp_path / "full", "--signmask-strategy", "full")
    sketch = run(tiny_model, blimp_dir, tmp_path / "sketch")
    return {"full": full, "sketch": sketch, "hand": by_hand(tiny_model, blimp_dir, tmp_path / "hand", 0.05)}


def test_the_exact_probe_is_p_by_hand_and_the_sketch_tracks_it(probes: dict) -> None:
    record = probes["full"]["spaces"]["signmask"]
    assert record["form"] == "linear" and record["probe"] == "signed-mask" and record["strategy"] == "full"
    assert record["k"] == 0.05 and record["undefined"]["count"] == 0
    exact = space(probes["full"])
    np.testing.assert_allclose(exact, probes["hand"], rtol=1e-4, atol=0)
    assert not np.allclose(exact, exact.T)  # a probe of transfer from source to target: not symmetric
    assert (np.diag(exact) > 0).all()  # a task's own sign step raises its own margin
    sketched = probes["sketch"]["spaces"]["signmask"]
    assert sketched["strategy"] == "signed-sketch" and sketched["k"] == 0.05
    # Measured on the tiny GPT-2 (3 tasks, --limit 12, k = 0.05, dim 2048): Pearson r = 0.9997 over
    # the 9 cells (0.994 over the 6 off-diagonal ones); the largest error is 3.5% of the largest
    # cell (the diagonal dominates; a small off-diagonal cell may be off by up to ~90% of itself).
    # At dim 256 r = 0.998, at dim 64 r = 0.994; k = 0.01, dim 2048: r = 0.9993.
    r = np.corrcoef(space(probes["sketch"]).ravel(), exact.ravel())[0, 1]
    assert r >= 0.95, r


def test_split_half_spaces_are_the_halves_probes(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    results = run(tiny_model, blimp_dir, tmp_path / "out", "--split-half", "--signmask-strategy", "full")
    halves = results["spaces"]["signmask"]["split_half"]
    assert set(halves) >= {"a", "b", "n_train"} and sum(halves["n_train"]) < sum(
        results["spaces"]["signmask"]["n_train"]
    )
    a, b = np.array(halves["a"], dtype=float), np.array(halves["b"], dtype=float)
    assert np.isfinite(a).all() and np.isfinite(b).all() and not np.allclose(a, b)


def test_the_sketch_is_projected_of_d_and_of_the_sign_mask() -> None:
    grad = np.random.default_rng(0).normal(size=LAYOUT.size).astype(np.float32)
    strategy, options = SignedSketch(), SignedSketchOptions(signed_topk=0.05, signed_projection_dim=64, seed=3)
    reduced = strategy.reduce(grad, LAYOUT, options)
    half = reduced.size // 2
    projected = Projected().reduce(grad, LAYOUT, ProjectedOptions(projection_dim=64, seed=3))
    assert reduced.dtype == np.float32 and np.array_equal(reduced[:half], projected)  # bit-identical
    dense = np.zeros_like(grad)
    mask = largest_magnitudes(grad, int(round(0.05 * grad.size)))
    dense[mask] = np.sign(grad[mask])
    expected = Projected().reduce(dense, LAYOUT, ProjectedOptions(projection_dim=64, seed=3))
    np.testing.assert_allclose(reduced[half:], expected, rtol=0, atol=1e-6)
    assert isinstance(strategy, ReducesOnDevice)  # and on a device (forced here on the CPU): the same
    device = strategy.reduce_tensor(torch.from_numpy(grad.copy()), LAYOUT, options)
    assert device.dtype == np.float32 and np.array_equal(device[half:], reduced[half:])
    np.testing.assert_allclose(device[:half], reduced[:half], rtol=1e-6, atol=1e-6)


def test_the_sketch_of_a_stored_run_is_projected_bit_for_bit(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """In a run, the stored R D half is the ``projected`` strategy's stored reduction."""
    config = RunConfig(
        model=str(tiny_model),
        tasks=TASKS,
        metrics=["signmask", "gradsim"],
        data_dir=blimp_dir,
        limit=12,
        output=tmp_path / "out",
        options={"signed-sketch": {"signed_projection_dim": 256}, "projected": {"projection_dim": 256}},
    )
    ctx = prepare(load_harness(), config)
    for t in TASKS:
        ctx.compute_gradient(t)  # one differential, reduced by both strategies
        signed, projected = ctx.gradient("signed-sketch", t), ctx.gradient("projected", t)
        assert signed.size == 2 * projected.size and np.array_equal(signed[: projected.size], projected)


def fake_run(form: str, vectors: dict[str, np.ndarray], n_train: dict[str, int], fraction: float):
    """What ``signmask`` reads of a run, from in-memory differentials (reduced as a run would)."""
    sketch, sketch_options = SignedSketch(), SignedSketchOptions(signed_topk=fraction, signed_projection_dim=8)
    layout = ParamLayout(("h.0.w", "h.1.w"), ((4, 5), (3, 4)))
    options = {
        "signmask": SignMaskOptions(form),
        "signed-sketch": sketch_options,
        "topk": SimpleNamespace(topk=fraction),
    }
    reduce = {
        "full": lambda v: v,
        "topk": lambda v: largest_magnitudes(v, max(1, int(round(fraction * v.size)))),
        "signed-sketch": lambda v: sketch.reduce(v, layout, sketch_options),
    }
    return SimpleNamespace(
        task_names=list(vectors),
        data={t: SimpleNamespace(train=[None] * n) for t, n in n_train.items()},
        harness=SimpleNamespace(gradient_strategies={"full", "topk", "signed-sketch"}),
        options=options.__getitem__,
        gradient=lambda strategy, task: reduce[strategy](vectors[task]),
    )


@pytest.mark.parametrize("form", ["full", "signed-sketch"])
def test_zero_differentials_and_empty_tasks_are_undefined_not_zero(form: str, monkeypatch) -> None:
    monkeypatch.setattr(signed_mask, "STEP", 7)  # the exact form's blocks split the masks
    rng = np.random.default_rng(1)
    vectors = {t: rng.normal(size=32).astype(np.float32) for t in ("a", "b")}
    vectors |= {"zero": np.zeros(32, np.float32), "empty": np.zeros(32, np.float32)}
    n_train = {"a": 3, "b": 5, "zero": 2, "empty": 0}
    space = SignMask().compute(fake_run(form, vectors, n_train, 0.25)).space
    assert space is not None
    matrix = np.array(space.matrix, dtype=float)
    assert np.isfinite(matrix[:2, :2]).all() and np.isnan(matrix[2:, :]).all() and np.isnan(matrix[:, 2:]).all()
    assert space.extra["undefined"] == "no training pairs for empty; zero gradient differential for zero"
    assert space.to_json()["undefined"]["count"] == 12
    if form == "full":  # exact: by numpy, with the mask split over blocks of 7
        for s, source in enumerate(("a", "b")):
            mask = largest_magnitudes(vectors[source], 8)
            for t, target in enumerate(("a", "b")):
                expected = np.sign(vectors[source][mask]) @ vectors[target][mask] / n_train[target]
                assert matrix[s, t] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "option, fragment",
    [
        (["--signed-topk", "0"], "--signed-topk must be in (0, 1], got 0.0"),
        (["--signed-projection-dim", "0"], "--signed-projection-dim must be at least 1, got 0"),
        (["--signmask-strategy", "topk"], "--signmask-strategy: invalid choice: 'topk'"),
    ],
)
def test_bad_options_are_one_line(option: list[str], fragment: str, capsys, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--model", str(tmp_path / "no-model"), "--tasks", "blimp_passive_2", "--metric", "signmask"]
    code = main([*argv, "--output", str(out), *option])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert not out.exists()
