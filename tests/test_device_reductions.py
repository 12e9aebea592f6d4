"""Reductions on the model's device: the ``topk`` mask and the ``projected`` sketch computed from a
torch tensor where the model lives (only the reduction crosses to the host) equal the host ones.
Checked here on the CPU, with the device path forced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lingspace_harness_plugins.strategies import Projected, ProjectedOptions, TopK, TopKOptions

import lingspace_harness.gradient_cache as gradient_cache
from lingspace_harness import ReducesOnDevice
from lingspace_harness.gradients import ParamLayout
from lingspace_harness.selection import largest_magnitudes, largest_magnitudes_tensor

LAYOUT = ParamLayout(("h.0.w", "h.0.b", "h.1.w"), ((300, 70), (70,), (64, 64)))


@pytest.mark.parametrize("n", [0, 1, 7, 500, 4096])
def test_largest_magnitudes_tensor_is_the_host_selection(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=20_000).astype(np.float32)
    x[::3] = np.round(x[::3], 1)  # many ties, some at the threshold
    x[5::97] = -x[4::97][: x[5::97].size]  # equal magnitudes of both signs
    expected = largest_magnitudes(x, n)
    got = largest_magnitudes_tensor(torch.from_numpy(x), n)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_topk_and_projected_reduce_on_device_as_on_the_host() -> None:
    grad = np.random.default_rng(0).normal(size=LAYOUT.size).astype(np.float32)
    tensor = torch.from_numpy(grad.copy())
    assert isinstance(TopK(), ReducesOnDevice) and isinstance(Projected(), ReducesOnDevice)
    topk = TopKOptions(0.01)
    assert np.array_equal(TopK().reduce_tensor(tensor, LAYOUT, topk), TopK().reduce(grad, LAYOUT, topk))
    projected, options = Projected(), ProjectedOptions(projection_dim=64, seed=3)
    host, device = projected.reduce(grad, LAYOUT, options), projected.reduce_tensor(tensor, LAYOUT, options)
    assert device.dtype == np.float32 and device.shape == host.shape
    np.testing.assert_allclose(device, host, rtol=1e-6, atol=1e-6)


def spaces(model: Path, blimp_dir: Path, out: Path, *extra: str) -> dict:
    from lingspace_harness.cli import main

    argv = ["run", "--model", str(model), "--tasks", "blimp_anaphor*,blimp_passive_2", "--data-dir", str(blimp_dir)]
    argv += ["--limit", "12", "--metric", "gradsim,overlap", "--analysis", "none", "--output", str(out), "-q"]
    assert main([*argv, *extra]) == 0
    return json.loads((out / "results.json").read_text())["spaces"]


@pytest.mark.parametrize("strategy", ["full", "projected"])
def test_a_run_with_device_reductions_gives_the_host_spaces(
    monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path, strategy: str
) -> None:
    """The whole gradient path with differentials kept as tensors (as on a GPU): the same masks,
    and gradsim from the host copy (``full``) or the device sketch (``projected``)."""
    extra = ("--gradsim-strategy", strategy, "--split-half")
    host = spaces(tiny_model, blimp_dir, tmp_path / "host", *extra)
    monkeypatch.setattr(gradient_cache, "on_device", lambda run: True)
    device = spaces(tiny_model, blimp_dir, tmp_path / "device", *extra)
    assert device["overlap"]["matrix"] == host["overlap"]["matrix"]
    assert device["overlap"]["split_half"] == host["overlap"]["split_half"]
    np.testing.assert_allclose(device["gradsim"]["matrix"], host["gradsim"]["matrix"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        device["gradsim"]["split_half"]["a"], host["gradsim"]["split_half"]["a"], rtol=1e-5, atol=1e-6
    )
