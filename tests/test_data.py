"""Pair validation, splits, and the real BLiMP files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lingspace_harness_plugins.blimp_yaml import yaml_path

from lingspace_harness import DataError, DataOptions, MinimalPair
from lingspace_harness.pairs import read_pairs_jsonl
from lingspace_harness.tasks import load_task_data, split_pairs


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(good: str = "The cat runs.", bad: str = "The cat run.", pid: int = 0) -> str:
    return json.dumps({"sentence_good": good, "sentence_bad": bad, "pairID": str(pid)})


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"sentence_good": "A cat runs."}', "missing field 'sentence_bad'"),
        ('{"sentence_good": "  ", "sentence_bad": "A cat run."}', "field 'sentence_good' is empty"),
        ('{"sentence_good": 3, "sentence_bad": "A cat run."}', "not a string"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write(tmp_path / "t.jsonl", [row(), "", bad_line, row(pid=2)])
    with pytest.raises(DataError, match=rf"t.jsonl:3: .*{message}"):
        read_pairs_jsonl(path)


def test_malformed_json_line_says_file_line_and_the_whole_json_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        row() + "\n" + '{"sentence_good": "A cat\truns.", "sentence_bad": "A cat run."}\n' + row(pid=2)[:25],
        encoding="utf-8",
    )  # a raw tab, then a truncated last line
    with pytest.raises(DataError) as bad:
        read_pairs_jsonl(path)
    assert str(bad.value) == f"{path}:2: not valid JSON: Invalid control character at: line 2 column 25"
    path.write_text(row() + "\n" + row(pid=2)[:25], encoding="utf-8")
    with pytest.raises(DataError) as truncated:
        read_pairs_jsonl(path)
    assert str(truncated.value) == (f"{path}:2: not valid JSON: Unterminated string starting at: line 2 column 19")


def test_identical_pairs_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "t.jsonl", [row(pid=0), row("Same.", "Same.", 1), row(pid=2), row("X.", "X.", 3)])
    with caplog.at_level(logging.WARNING, logger="lingspace_harness"):
        pairs = read_pairs_jsonl(path)
    assert [p.pair_id for p in pairs] == ["0", "2"]
    assert "skipped 2 pair(s)" in caplog.text and "line 2, 4" in caplog.text


def test_no_valid_pairs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no valid minimal pairs"):
        read_pairs_jsonl(write(tmp_path / "t.jsonl", [row("Same.", "Same.")]))


def test_splits_are_deterministic_disjoint_and_independent_of_other_tasks() -> None:
    pairs = [MinimalPair(str(i), f"g{i}", f"b{i}") for i in range(1000)]
    a = split_pairs(pairs, "task_a", seed=0)
    assert [len(s) for s in a] == [400, 100, 500]
    assert a == split_pairs(pairs, "task_a", seed=0)
    assert a != split_pairs(pairs, "task_a", seed=1)
    assert a != split_pairs(pairs, "task_b", seed=0)
    ids = [p.pair_id for s in a for p in s]
    assert sorted(ids, key=int) == [str(i) for i in range(1000)]
    limited = split_pairs(pairs, "task_a", seed=0, limit=20)
    assert [s for s in limited] == [s[:20] for s in a]


def test_every_blimp_file_parses_with_seven_identical_rows(blimp_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lingspace_harness"):
        counts = {p.stem: len(read_pairs_jsonl(p)) for p in sorted(blimp_dir.glob("*.jsonl"))}
    assert len(counts) == 67
    assert sum(1000 - n for n in counts.values()) == 7
    assert counts["passive_1"] + counts["principle_A_case_2"] == 1993
    assert caplog.text.count("identical") == 2


def test_yaml_metadata_matches_the_data(blimp_dir: Path) -> None:
    """The packaged leaves carry each paradigm's labels; they must agree with the files."""
    leaves = sorted((yaml_path() / "blimp").glob("lingspace_blimp_*.yaml"))
    assert len(leaves) == 67
    terms = set()
    for leaf in leaves:
        spec = yaml.safe_load(leaf.read_text())
        first = json.loads((blimp_dir / f"{spec['dataset_name']}.jsonl").open().readline())
        assert spec["task"] == f"lingspace_blimp_{first['UID']}"
        assert spec["metadata"]["phenomenon"] == first["linguistics_term"]
        assert spec["metadata"]["field"] == first["field"]
        terms.add(first["linguistics_term"])
    assert len(terms) == 13
    groups = {yaml.safe_load(leaf.read_text())["metadata"]["group"] for leaf in leaves}
    assert len(groups) == 12 and "s-selection" not in groups


def test_generator_reproduces_the_committed_yaml(blimp_dir: Path, tmp_path: Path) -> None:
    generator = yaml_path() / "blimp" / "generate.py"
    subprocess.run(
        [sys.executable, str(generator), "--data-dir", str(blimp_dir), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for made in tmp_path.glob("*.yaml"):
        assert made.read_text() == (yaml_path() / "blimp" / made.name).read_text(), made.name


def test_blimp_task_splits_and_labels(blimp_dir: Path) -> None:
    from lingspace_harness import load_harness

    task = load_harness().tasks.get("blimp_animate_subject_trans")
    assert (task.phenomenon, task.field, task.group) == ("s-selection", "syntax", "argument_structure")
    data = load_task_data(task, DataOptions(data_dir=blimp_dir), seed=3, limit=7)
    assert data.counts() == {"n_train": 7, "n_validation": 7, "n_test": 7}
    missing = DataOptions(data_dir=blimp_dir / "nowhere")
    with pytest.raises(DataError, match="nowhere/animate_subject_trans.jsonl not found"):
        load_task_data(task, missing)
