"""Benchmark results are written as JSON beside the commit that made them (benchmarks/record.py):
the helper's fields, and a real benchmark (``spaces.py ratio`` on the tiny model) writing them."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def head() -> str | None:
    """This checkout's commit, None where the tests do not run in a git checkout."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def git(repo: Path, *argv: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run([*command, *argv], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_state_reads_the_commit_and_tracked_changes(tmp_path: Path) -> None:
    record = load("record")
    assert record.git_state(tmp_path) == (None, None)  # not a checkout
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "sub" / "a.txt").write_text("a\n")
    git(repo, "add", "sub/a.txt")
    git(repo, "commit", "-q", "-m", "first")
    commit = git(repo, "rev-parse", "HEAD")
    assert record.git_state(repo / "sub") == (commit, False)
    (repo / "untracked.txt").write_text("results are not code\n")
    assert record.git_state(repo) == (commit, False)
    (repo / "sub" / "a.txt").write_text("b\n")
    assert record.git_state(repo) == (commit, True)


def test_record_fields_default_path_and_plain_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = load("record")
    monkeypatch.setattr(record, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", ["bench.py", "--repeats", "2"])
    rec = record.Record("bench", {"repeats": 2, "out": tmp_path / "o", "json": None})
    figures = {"median_s": np.float64(1.5), "each_s": np.array([1.0, 2.0]), "undefined": float("nan"), "n": np.int64(3)}
    first = rec.write(figures)
    short = (head() or "nocommit")[:7]
    assert first == tmp_path / "results" / f"bench-{short}.json"
    assert rec.write(figures) == tmp_path / "results" / f"bench-{short}-2.json"  # the first is kept
    doc = json.loads(first.read_text())
    assert set(doc) == {
        "benchmark",
        "argv",
        "commit",
        "dirty",
        "package",
        "started",
        "finished",
        "machine",
        "settings",
        "figures",
    }
    assert doc["benchmark"] == "bench" and doc["argv"] == ["bench.py", "--repeats", "2"]
    assert doc["commit"] == head() and isinstance(doc["dirty"], bool) == (head() is not None)
    assert doc["figures"] == {"median_s": 1.5, "each_s": [1.0, 2.0], "undefined": None, "n": 3}
    assert doc["settings"] == {"repeats": 2, "out": str(tmp_path / "o"), "json": None}
    assert doc["started"] <= doc["finished"] and doc["finished"].endswith("+00:00")
    import torch

    assert doc["machine"]["torch"] == torch.__version__
    assert doc["machine"]["torch_threads"] == torch.get_num_threads()
    assert doc["machine"]["cpu_count"] >= 1 and doc["machine"]["python"].count(".") == 2
    assert doc["package"]["path"] == str(Path(sys.modules["lingspace_harness"].__file__).resolve().parent)
    explicit = tmp_path / "deep" / "x.json"
    assert record.Record("bench", {"json": explicit}).write({}) == explicit  # --json wins
    assert json.loads(explicit.read_text())["figures"] == {}


def test_report_medians_returns_what_it_prints() -> None:
    common = load("common")
    times = {
        "base": [np.array([2.0, 1.0]), np.array([4.0, 3.0]), np.array([3.0, 2.0])],
        "other": [np.array([6.0, 4.0]), np.array([9.0, 6.0]), np.array([12.0, 8.0])],
    }
    figures = common.report_medians(times, "base")
    assert figures["base"]["wall_s"] == 3.0 and figures["base"]["wall_ratio"] == 1.0
    assert figures["other"]["wall_s"] == 9.0 and figures["other"]["wall_ratio"] == 3.0
    assert figures["other"]["cpu_s"] == 6.0 and figures["other"]["cpu_ratio"] == 3.0
    assert figures["other"]["wall_each_s"] == [6.0, 9.0, 12.0]


def test_a_benchmark_writes_its_record(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """`python benchmarks/spaces.py ratio` as a user runs it (its imports from benchmarks/), on the
    tiny model at its smallest settings; nothing is written under benchmarks/results."""
    results = sorted((BENCHMARKS / "results").glob("*.json"))
    out = tmp_path / "ratio.json"
    argv = [sys.executable, str(BENCHMARKS / "spaces.py"), "ratio", "--model", str(tiny_model)]
    argv += ["--data-dir", str(blimp_dir), "--pairs", "4", "--repeats", "3", "--threads", "1", "--json", str(out)]
    subprocess.run(argv, check=True, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "spaces-ratio" and doc["argv"] == argv[1:]
    assert doc["commit"] == head()
    assert doc["settings"]["pairs"] == 4 and doc["settings"]["repeats"] == 3 and doc["settings"]["what"] == "ratio"
    assert doc["machine"]["torch_threads"] == 1
    figures = doc["figures"]
    for key in ("scoring_s", "gradient_s", "ratio"):
        assert isinstance(figures[key], float) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert len(figures["scoring_each_s"]) == len(figures["gradient_each_s"]) == 3
    assert figures["scoring_s"] == statistics.median(figures["scoring_each_s"])
    assert figures["ratio"] == pytest.approx(figures["gradient_s"] / figures["scoring_s"])
    assert figures["pairs"] == 4
    assert sorted((BENCHMARKS / "results").glob("*.json")) == results
