"""The task-space metrics end to end on a tiny model: shapes, caching, resume, lookahead vs transfer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from lingspace_harness.cli import main

TASKS = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement,blimp_passive_2,blimp_npi_present_1"


def run(model: Path, blimp_dir: Path, out: Path, metrics: str, *extra: str) -> dict:
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
                "12",
                "--metric",
                metrics,
                "--output",
                str(out),
                *extra,
            ]
        )
        == 0
    )
    return json.loads((out / "results.json").read_text())


def test_gradient_spaces_and_cache(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run(tiny_model, blimp_dir, out, "gradsim,overlap")
    tasks = list(results["tasks"])
    for name in ("gradsim", "overlap"):
        space = results["spaces"][name]
        m = np.array(space["matrix"])
        assert space["tasks"] == tasks and m.shape == (4, 4)
        assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    gradsim = results["spaces"]["gradsim"]
    assert set(gradsim["per_layer"]) == {"0", "1", "other"} and np.array(gradsim["centred"]).shape == (4, 4)
    k = results["spaces"]["overlap"]["k"]  # the masks' actual share of the parameters
    assert k == pytest.approx(0.01, abs=1e-4) and results["spaces"]["overlap"]["chance"] == pytest.approx(k / (2 - k))
    units = sorted(p.name for p in (out / "units").rglob("*.npy"))
    assert len(units) == 8  # full and topk, per task
    stamps = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.npy")}
    again = run(tiny_model, blimp_dir, out, "gradsim,overlap")
    assert again["spaces"] == results["spaces"]
    assert {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.npy")} == stamps  # nothing recomputed
    # another setting into the same directory is refused (one run per directory) ...
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                TASKS,
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "12",
                "--metric",
                "gradsim,overlap",
                "--output",
                str(out),
                "--topk",
                "0.05",
            ]
        )
        == 2
    )
    # ... and elsewhere it gives new masks and the same gradsim space
    other = run(tiny_model, blimp_dir, tmp_path / "other", "gradsim,overlap", "--topk", "0.05")
    assert other["spaces"]["overlap"]["k"] == pytest.approx(0.05, abs=1e-4)
    assert other["spaces"]["gradsim"] == results["spaces"]["gradsim"]
    assert other["config"]["options"]["gradient_strategy"]["topk"] == {"topk": 0.05}


def test_transfer_and_lookahead(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    results = run(
        tiny_model,
        blimp_dir,
        tmp_path / "out",
        "transfer,lookahead",
        "--ftgd-lr",
        "3e-3",
        "--ftgd-steps",
        "10",
        "--transfer-baseline",
    )
    transfer, lookahead = results["spaces"]["transfer"], results["spaces"]["lookahead"]
    t = np.array(transfer["matrix"], dtype=float)  # null -> NaN
    tuned = np.array(transfer["tuned"])
    assert t.shape == (4, 4) and tuned.any()
    # a source whose tuning early stopping rejected is undefined, never zeros
    assert np.isnan(t[~tuned]).all() and np.isfinite(t[tuned]).all()
    assert transfer["undefined"]["count"] == 4 * int((~tuned).sum())
    if not tuned.all():  # the reason is where every space keeps it (extra["undefined"])
        assert transfer["undefined"]["reason"].startswith("early stopping kept the untuned model for")
        assert "undefined_reason" not in transfer
    assert np.nanmean(np.diag(t)[tuned]) > 0  # tuning on a task raises its own margin
    for i, row in enumerate(transfer["normalised"]):
        assert row[i] == (1.0 if t[i, i] > 0 else None) and (t[i, i] > 0 or row == [None] * 4)
    assert len(transfer["perplexity_change"]) == 4 and all(s >= 1 for s in transfer["steps"])
    baseline = transfer["baseline"]["summary"]
    assert set(baseline) == {"ftgd", "full"} and baseline["full"]["target"] != baseline["ftgd"]["target"]
    both = np.isfinite(t)
    rho = spearmanr(np.array(lookahead["matrix"], dtype=float)[both], t[both]).statistic
    assert rho > 0.5, rho  # the cheap estimate ranks cells like the real thing


def test_baseline_is_tuned_on_the_runs_own_data_only(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run(tiny_model, blimp_dir, out, "transfer", "--ftgd-steps", "2", "--transfer-baseline", "--split-half")

    def rows(kind: str) -> int:
        return len([p for p in (out / "units" / kind).glob("*.json") if not p.name.endswith(".key.json")])

    assert rows("transfer") == 3 * 4 and rows("transfer-baseline") == 4  # the halves tune with the mask only
    transfer = results["spaces"]["transfer"]
    assert "baseline" in transfer and set(transfer["split_half"]) >= {"a", "b"}


def test_killed_run_resumes_to_the_same_results(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    reference = run(tiny_model, blimp_dir, tmp_path / "ref", "gradsim,lookahead")
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "lingspace_harness.cli",
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        TASKS,
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "12",
        "--metric",
        "gradsim,lookahead",
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and len([p for p in out.glob("units/lookahead/*.json") if not p.name.endswith(".key.json")]) < 1
    ):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    done = len([p for p in out.glob("units/lookahead/*.json") if not p.name.endswith(".key.json")])
    assert 1 <= done < 4, done
    resumed = run(tiny_model, blimp_dir, out, "gradsim,lookahead")
    assert resumed["spaces"] == reference["spaces"] and resumed["tasks"] == reference["tasks"]
