"""Linear forms of transfer and lookahead on a tiny model: each cell is the directional
derivative of the target's mean test margin along the source's stored update; with a small
learning rate the re-scored cells approach them; resumed, split-half and sharded runs agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lingspace_harness_plugins.ftgd.linear import sorted_mask, stored_mask
from lingspace_harness_plugins.ftgd.tuning import mask_unit, targets, update_store

from lingspace_harness import RunConfig, load_harness
from lingspace_harness.cli import main
from lingspace_harness.runner import prepare
from lingspace_harness.tasks import task_delimiter

TASKS = ["blimp_anaphor_gender_agreement", "blimp_anaphor_number_agreement", "blimp_passive_2"]
FTGD = ["--ftgd-steps", "4", "--ftgd-eval-every", "2", "--topk", "0.05"]


def run(model: Path, blimp_dir: Path, out: Path, *extra: str, metric: str = "transfer") -> dict:
    args = ["run", "--model", str(model), "--tasks", ",".join(TASKS), "--data-dir", str(blimp_dir)]
    args += ["--limit", "12", "--metric", metric, "--output", str(out), "--analysis", "none", *FTGD, *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def space(results: dict, metric: str = "transfer") -> np.ndarray:
    return np.array(results["spaces"][metric]["matrix"], dtype=float)


def mean_margin_gradient(ctx, target: str) -> np.ndarray:
    """∇ of the target's mean test margin by plain autograd over padded rows (not the prefix
    trees the linear form sums through), flattened in the gradient layout."""
    pairs = targets(ctx, tuning_of(ctx))[target]
    params = [p for _, p in ctx.gradient_params]
    for p in ctx.access.model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    logps = ctx.access.logprobs([s for p in pairs for s in (p.good, p.bad)], task_delimiter(ctx.data[target].task))
    torch.stack([logps[2 * j] - logps[2 * j + 1] for j in range(len(pairs))]).mean().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in params]).detach().numpy().astype(np.float64)
    for p in params:
        p.grad = None
    return grad


def tuning_of(ctx):
    transfer = ctx.harness.metrics.get("transfer")
    return transfer.tunings(ctx)[0]


def linear_ctx(model: Path, blimp_dir: Path, out: Path):
    config = RunConfig(
        model=str(model),
        tasks=TASKS,
        metrics=["transfer"],
        data_dir=blimp_dir,
        limit=12,
        output=out,
        options={
            "transfer": {"transfer_form": "linear", "ftgd_lr": 3e-3, "ftgd_steps": 4, "ftgd_eval_every": 2},
            "topk": {"topk": 0.05},
        },
    )
    return prepare(load_harness(), config)


def test_a_linear_cell_is_the_directional_derivative_of_the_target_margin(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    results = run(tiny_model, blimp_dir, tmp_path / "out", "--transfer-form", "linear", "--ftgd-lr", "3e-3")
    record = results["spaces"]["transfer"]
    assert record["form"] == "linear" and "accuracy" not in record  # accuracy cells have no gradient
    linear = space(results)
    ctx = linear_ctx(tiny_model, blimp_dir, tmp_path / "out")
    tuning = tuning_of(ctx)
    store = update_store(ctx, tuning)
    tuned = [s for s in TASKS if store.load_json(s)["tuned"]]
    assert tuned, "no source tuned: the test would prove nothing"
    for j, target in enumerate(TASKS):
        grad = mean_margin_gradient(ctx, target)
        for i, source in enumerate(TASKS):
            if source not in tuned:
                assert np.isnan(linear[i, j])  # undefined, not zero
                continue
            delta = store.load_array(source).astype(np.float64)
            mask = stored_mask(store, ctx, tuning, source)  # stored beside the update: the mask recomputed
            assert store.has(mask_unit(source), ".npy") and np.array_equal(mask, sorted_mask(ctx, tuning, source))
            expected = float(delta @ grad[mask])
            assert linear[i, j] == pytest.approx(expected, rel=1e-3, abs=1e-6)
    # and by finite differences: m(θ + εΔ) − m(θ − εΔ) over 2ε, with the model moved along Δθ
    source, target = tuned[0], TASKS[-1]
    delta = torch.from_numpy(store.load_array(source).copy())
    mask = torch.from_numpy(sorted_mask(ctx, tuning, source))
    flat = torch.cat([p.detach().reshape(-1) for _, p in ctx.gradient_params])
    pairs = targets(ctx, tuning)[target]
    delimiter = task_delimiter(ctx.data[target].task)

    def margin_at(eps: float) -> float:
        moved = flat.clone()
        moved[mask] += eps * delta
        offset = 0
        with torch.no_grad():
            for _, p in ctx.gradient_params:
                p.copy_(moved[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        return ctx.access.mean_margin(pairs, delimiter)

    eps = 0.05
    estimate = (margin_at(eps) - margin_at(-eps)) / (2 * eps)
    margin_at(0.0)
    assert linear[TASKS.index(source), TASKS.index(target)] == pytest.approx(estimate, rel=0.05, abs=1e-4)


def test_with_a_small_learning_rate_rescored_over_linear_is_one(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    lr = ["--ftgd-lr", "1e-4"]
    rescored = space(run(tiny_model, blimp_dir, tmp_path / "rescored", *lr))
    linear = space(run(tiny_model, blimp_dir, tmp_path / "linear", *lr, "--transfer-form", "linear"))
    assert np.array_equal(np.isnan(rescored), np.isnan(linear))  # the same tunes: the same untuned rows
    large = np.isfinite(linear) & (np.abs(linear) > 0.1 * np.nanmax(np.abs(linear)))
    assert large.sum() >= 3
    ratio = rescored[large] / linear[large]
    assert np.all(np.abs(ratio - 1) < 0.05), ratio
    # a larger rate leaves the first order behind: the ratio moves away from 1
    big = ["--ftgd-lr", "3e-2"]
    far = space(run(tiny_model, blimp_dir, tmp_path / "rescored-big", *big))
    near = space(run(tiny_model, blimp_dir, tmp_path / "linear-big", *big, "--transfer-form", "linear"))
    both = np.isfinite(far) & np.isfinite(near) & (np.abs(near) > 0.1 * np.nanmax(np.abs(near)))
    assert np.max(np.abs(far[both] / near[both] - 1)) > np.max(np.abs(ratio - 1))


def test_linear_lookahead_split_half_resume_and_shards(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--lookahead-form", "linear", "--split-half"]
    serial = run(tiny_model, blimp_dir, tmp_path / "serial", *extra, metric="lookahead")
    record = serial["spaces"]["lookahead"]
    assert record["form"] == "linear"
    assert {"a", "b"} <= set(record["split_half"])
    again = run(tiny_model, blimp_dir, tmp_path / "serial", *extra, metric="lookahead")  # resumed: nothing redone
    assert again["spaces"]["lookahead"]["matrix"] == record["matrix"]
    shards = tmp_path / "shards"
    base = ["run", "--model", str(tiny_model), "--tasks", ",".join(TASKS), "--data-dir", str(blimp_dir)]
    base += ["--limit", "12", "--metric", "lookahead", "--output", str(shards), "--analysis", "none", *FTGD, *extra]
    assert main([*base, "--shard", "0/2"]) == 0
    waited = capsys.readouterr().err
    assert "rerun this shard once every shard has finished" in waited  # shard 1's tunes are not done
    assert main(["merge", str(shards)]) == 2  # nor are shard 0's target columns
    capsys.readouterr()
    for i in (1, 0):  # shard 1 finds every tune stored (its own and shard 0's): it computes its columns at once
        assert main([*base, "--shard", f"{i}/2"]) == 0
        assert "rerun this shard" not in capsys.readouterr().err
    assert main(["merge", str(shards)]) == 0
    merged = json.loads((shards / "results.json").read_text())["spaces"]["lookahead"]
    assert merged["matrix"] == record["matrix"]
    assert (merged["split_half"]["a"], merged["split_half"]["b"]) == (
        record["split_half"]["a"],
        record["split_half"]["b"],
    )


def test_linear_form_options(tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["run", "--model", str(tiny_model), "--tasks", TASKS[0], "--data-dir", str(blimp_dir), "--limit", "12"]
    for bad in (["--ftgd-mask", "full"], ["--transfer-baseline"]):
        assert main([*base, "--metric", "transfer", "--transfer-form", "linear", *bad, "--output", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--transfer-form linear needs a sparse mask" in err[0]
    # the default form is not recorded: run directories written before the option still resume
    run(tiny_model, blimp_dir, tmp_path / "old", "--ftgd-lr", "1e-3")
    recorded = json.loads((tmp_path / "old" / "run.json").read_text())["config"]["options"]["metric"]["transfer"]
    assert "transfer_form" not in recorded
    linear = run(tiny_model, blimp_dir, tmp_path / "new", "--transfer-form", "linear")
    assert linear["config"]["options"]["metric"]["transfer"]["transfer_form"] == "linear"


def test_a_rescored_run_stores_the_updates_the_linear_form_reads(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    """A re-scored transfer run stores each source's update as the linear form does (same unit
    key, same values), so a linear space can be built from its tunes without tuning again."""
    from lingspace_harness_plugins.ftgd.linear import pending_sources

    lr = ["--ftgd-lr", "3e-3"]
    run(tiny_model, blimp_dir, tmp_path / "rescored", *lr)
    run(tiny_model, blimp_dir, tmp_path / "linear", *lr, "--transfer-form", "linear")
    rescored = linear_ctx(tiny_model, blimp_dir, tmp_path / "rescored")
    fresh = linear_ctx(tiny_model, blimp_dir, tmp_path / "linear")
    tuning = tuning_of(rescored)
    assert pending_sources(rescored, tuning) == []  # every tune is there already
    for source in TASKS:
        a, b = update_store(rescored, tuning), update_store(fresh, tuning)
        assert a.load_json(source) == b.load_json(source)
        if a.load_json(source)["tuned"]:
            assert np.array_equal(a.load_array(source), b.load_array(source))
