"""A task's source says where its pairs came from: the resolved --data-dir, or the hub at a revision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lingspace_harness import DataOptions, MinimalPair, Task
from lingspace_harness.cli import main
from lingspace_harness.tasks import task_source


@pytest.fixture
def local_copy(blimp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``data/passive_1.jsonl`` under the working directory, while $LINGSPACE_BLIMP_DIR names another."""
    (tmp_path / "data").mkdir()
    shutil.copy(blimp_dir / "passive_1.jsonl", tmp_path / "data")
    monkeypatch.setenv("LINGSPACE_BLIMP_DIR", str(blimp_dir))
    monkeypatch.chdir(tmp_path)
    return (tmp_path / "data").resolve()


def test_run_records_the_data_dir_it_read(capsys, local_copy: Path, tiny_model: Path) -> None:
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "blimp_passive_1",
                "--data-dir",
                "data",
                "--limit",
                "2",
                "--output",
                "out",
            ]
        )
        == 0
    )
    results = json.loads(Path("out/results.json").read_text())
    assert results["tasks"]["blimp_passive_1"]["source"] == f"blimp:local:{local_copy}"


def test_tasks_takes_data_dir_and_prints_a_header(
    capsys, local_copy: Path, blimp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["tasks", "blimp_passive_1", "--data-dir", "data"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "name\tphenomenon\tfield\tsource",
        f"blimp_passive_1\targument_structure\tsyntax\tblimp:local:{local_copy}",
    ]
    assert main(["tasks", "blimp_passive_1", "--json"]) == 0  # the default: $LINGSPACE_BLIMP_DIR
    assert json.loads(capsys.readouterr().out)["source"] == f"blimp:local:{blimp_dir.resolve()}"
    monkeypatch.delenv("LINGSPACE_BLIMP_DIR")
    assert main(["tasks", "blimp_passive_1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "blimp:hub:nyu-mll/blimp@main"


def test_a_task_without_source_for_keeps_its_static_source() -> None:
    static = Task(name="t", phenomenon="p", field="f", source="mine", load=lambda o: [MinimalPair("1", "A", "B")])
    assert task_source(static, DataOptions(data_dir=Path("/x"))) == "mine"
    dynamic = Task(
        name="t",
        phenomenon="p",
        field="f",
        source="mine",
        load=static.load,
        source_for=lambda options: f"dir:{options.data_dir}",
    )
    assert task_source(dynamic, DataOptions(data_dir=Path("/x"))) == "dir:/x"
