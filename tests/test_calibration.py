"""FTGD's learning rate per model (``calibrate``) and the per-source perplexity flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lingspace_harness_plugins.ftgd.calibration import PERPLEXITY_BOUND, choose, flagged, relative_changes

from lingspace_harness.cli import main

RUN = ["--tasks", "blimp_anaphor*,blimp_passive_2", "--limit", "12", "--transfer-targets", "6", "--analysis", "none"]


def test_relative_changes_and_flags_keep_undefined_sources_undefined() -> None:
    relative = relative_changes(50.0, [5.0, None, -10.0, 6.0])
    assert relative == [0.1, None, -0.2, 0.12]
    assert flagged(["a", "b", "c", "d"], relative) == ["d"]  # 0.1 is at the bound, not above it
    assert relative_changes(None, [1.0]) == [None]


def test_the_largest_lr_under_the_bound_is_chosen() -> None:
    row = lambda m: {"median_relative_perplexity_change": m}  # noqa: E731
    assert choose({1e-5: row(0.0), 1e-4: row(0.05), 3e-4: row(0.3)}, 0.1) == 1e-4
    assert choose({1e-4: row(0.5), 3e-4: row(None)}, 0.1) is None


def test_calibrate_runs_transfer_per_lr_and_records_its_choice(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cal"
    argv = ["calibrate", "--lrs", "1e-2,1e-4", "--output", str(out), "-q", "--", "--model", str(tiny_model)]
    assert main([*argv, "--data-dir", str(blimp_dir), *RUN]) == 0
    record = json.loads((out / "calibration.json").read_text())
    assert record["bound"] == PERPLEXITY_BOUND and set(record["learning_rates"]) == {"0.0001", "0.01"}
    rows = record["learning_rates"]
    assert choose({float(k): v for k, v in rows.items()}, PERPLEXITY_BOUND) == record["chosen_lr"]
    space = json.loads((out / "lr-0.01" / "results.json").read_text())["spaces"]["transfer"]
    assert space["perplexity_on"] == "file:general_text.txt"  # the packaged general text by default
    assert space["perplexity_flagged"]["bound"] == PERPLEXITY_BOUND
    assert len(space["perplexity_relative_change"]) == len(space["tasks"])
    assert "chosen: --ftgd-lr" in capsys.readouterr().out or record["chosen_lr"] is None


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--lrs", "fast"], "--lrs must be numbers"),
        (["--lrs", "0,1e-4"], "--lrs must be positive"),
        (["--bound", "0"], "--bound must be positive"),
    ],
)
def test_calibrate_refuses_bad_settings_in_one_line(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path, extra: list[str], fragment: str
) -> None:
    argv = ["calibrate", *extra, "--output", str(tmp_path / "cal"), "--", "--model", str(tiny_model)]
    assert main([*argv, "--data-dir", str(blimp_dir), *RUN]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "cal").exists()


def test_calibrate_sets_metric_and_lr_itself(capsys, tiny_model: Path, tmp_path: Path) -> None:
    argv = ["calibrate", "--output", str(tmp_path / "cal"), "--", "--model", str(tiny_model), "--metric", "gradsim"]
    assert main([*argv, "--tasks", "blimp_passive_2"]) == 2
    assert "leave --metric out of the run options" in capsys.readouterr().err
