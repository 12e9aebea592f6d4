"""Issue 33: every reader refuses a file that is not a run's, ``run`` refuses a setting it cannot
run before the model loads (or runs it), and a short BLiMP file is named."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import lingspace_harness.runner as runner
from lingspace_harness import DataOptions, hookimpl, load_harness
from lingspace_harness.cli import main
from lingspace_harness.tasks import load_task_data

NOT_RUNS = {
    "other-json": ('{"x": 1}', ["is not a run's results", "it has no version, config, tasks, spaces"]),
    "array": ("[1, 2]", ["is not a run's results", "holds an array, not an object"]),
    "wrong-type": (
        json.dumps({"version": 1, "config": {}, "tasks": [], "spaces": None}),
        ["is not a run's results", "tasks is an array; spaces is null"],
    ),
    "not-json": ("{not json", ["cannot read", "results.json"]),
}


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The one error line (warnings of other plugins may come before it), with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("reader", ["report", "analyse", "compare"])
@pytest.mark.parametrize("case", list(NOT_RUNS))
def test_readers_refuse_a_results_json_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, reader: str, case: str
) -> None:
    if reader == "report":
        pytest.importorskip("matplotlib")
    text, fragments = NOT_RUNS[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(text)
    argv = {
        "report": ["report", str(run_dir)],
        "analyse": ["analyse", str(run_dir)],
        "compare": ["compare", str(run_dir), str(run_dir), "--output", str(tmp_path / "out")],
    }[reader]
    assert main(argv) == 2
    line = error_line(capsys)
    assert str(run_dir / "results.json") in line and all(f in line for f in fragments), line
    assert (run_dir / "results.json").read_text() == text  # analyse wrote nothing back
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["results.json", "run"]  # no report, no comparison


@pytest.mark.parametrize("reader", ["analyse", "compare"])
def test_readers_refuse_a_directory_without_results_json(
    tmp_path: Path, capsys: pytest.CaptureFixture, reader: str
) -> None:
    nowhere = tmp_path / "nowhere"
    argv = [reader, str(nowhere)] + ([str(nowhere), "--output", str(tmp_path / "out")] if reader == "compare" else [])
    assert main(argv) == 2
    assert f"no results.json in {nowhere} (is it a run's --output directory?)" in error_line(capsys)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run loads its model."""

    def load_model(*args: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(runner, "load_model", load_model)


class EmptySource:
    """A task source that finds no task for any spec."""

    name = "empty"
    description = "finds nothing"

    def claims(self, spec: str) -> bool:
        return False

    def resolve(self, specs: list[str], options: DataOptions) -> list:
        return []


@pytest.mark.parametrize(
    "tasks, message",
    [
        ("", "the task selection names no task; give comma-separated globs, e.g. 'blimp_*'"),
        (" , ", "the task selection names no task"),
        ("empty:anything", "--tasks 'empty:anything' selects no task"),
    ],
)
def test_a_selection_of_no_task_is_refused_before_the_model_loads(
    capsys: pytest.CaptureFixture,
    lingspace_plugin,
    no_model: None,
    tiny_model: Path,
    tmp_path: Path,
    tasks: str,
    message: str,
) -> None:
    class Plugin:
        @hookimpl
        def lingspace_register_task_sources(self, register):
            register(EmptySource())

    lingspace_plugin(Plugin(), "empty-source")
    out = tmp_path / "out"
    assert main(["run", "--model", str(tiny_model), "--tasks", tasks, "--output", str(out)]) == 2
    assert message in error_line(capsys)
    assert not (out / "results.json").exists()
    if not tasks.strip(" ,"):  # the same words for `tasks`, whose selection is positional
        assert main(["tasks", tasks]) == 2
        assert message in error_line(capsys)


@pytest.mark.parametrize("limit", [1, 2])
def test_small_limits_run_every_metric_that_learns(
    capsys: pytest.CaptureFixture, tiny_model: Path, blimp_dir: Path, tmp_path: Path, limit: int
) -> None:
    """``--limit 1`` halves one training pair into none and one: gradients (gradsim), tuning
    (cka's provider, transfer) and cka's probe set of 2 sentences all run."""
    out = tmp_path / "out"
    argv = ["run", "--model", str(tiny_model), "--tasks", "blimp_passive_1,blimp_passive_2", "--metric", "gradsim,cka"]
    argv += ["--data-dir", str(blimp_dir), "--limit", str(limit), "--output", str(out), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert all(t["n_train"] == limit for t in results["tasks"].values())
    gradsim = np.array(results["spaces"]["gradsim"]["matrix"], dtype=float)
    assert gradsim.shape == (2, 2) and np.isfinite(gradsim).all() and np.allclose(np.diag(gradsim), 1)
    assert np.array(results["spaces"]["cka"]["matrix"], dtype=float).shape == (2, 2)


def test_split_half_at_limit_1_is_refused_with_the_least_limit(
    capsys: pytest.CaptureFixture, no_model: None, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    argv = ["run", "--model", str(tiny_model), "--tasks", "blimp_passive_2", "--metric", "lookahead", "--split-half"]
    assert main(argv + ["--data-dir", str(blimp_dir), "--limit", "1", "--output", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert "'blimp_passive_2' has too few to halve" in line and "--split-half needs --limit 2 or more" in line


def test_a_short_blimp_file_is_named_with_its_row_count(
    blimp_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = load_harness().tasks.get("blimp_passive_2")
    short = tmp_path / "passive_2.jsonl"
    short.write_text("".join((blimp_dir / "passive_2.jsonl").read_text().splitlines(keepends=True)[:600]))
    with caplog.at_level(logging.WARNING, logger="lingspace_harness"):
        data = load_task_data(task, DataOptions(data_dir=tmp_path), limit=5)
    assert data.counts() == {"n_train": 5, "n_validation": 5, "n_test": 5}  # used, as before
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == f"{short}: 600 rows, fewer than the official BLiMP paradigm's 1,000 (a truncated or edited copy?)"
    caplog.clear()
    shutil.copy(blimp_dir / "passive_2.jsonl", short)  # the official file: no warning
    with caplog.at_level(logging.WARNING, logger="lingspace_harness"):
        load_task_data(task, DataOptions(data_dir=tmp_path), limit=5)
    assert not caplog.records
