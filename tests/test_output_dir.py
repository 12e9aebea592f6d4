"""``run --output``: a file, or a directory we may not write to, is one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lingspace_harness.cli import main
from lingspace_harness.results import check_output_dir


def run_into(capsys, output: Path, tiny_model: Path, blimp_dir: Path) -> int:
    capsys.readouterr()  # drop what building the tiny model printed
    return main(
        [
            "run",
            "--model",
            str(tiny_model),
            "--tasks",
            "blimp_passive_1",
            "--data-dir",
            str(blimp_dir),
            "--limit",
            "2",
            "--output",
            str(output),
        ]
    )


def one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may write into: mode 0555, or as root (who ignores modes) immutable."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip(
            "running as root, and `chattr +i` (the only way to deny root a write) is unavailable "
            "or unsupported on this file system"
        )
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_output_that_is_a_file(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert run_into(capsys, target, tiny_model, blimp_dir) == 2
    one_line(capsys.readouterr().err, f"--output {target} is a file")
    assert target.read_text() == "keep me"
    assert run_into(capsys, target / "out", tiny_model, blimp_dir) == 2  # a parent is a file
    one_line(capsys.readouterr().err, f"{target} is a file")


def test_output_we_may_not_write(capsys, tiny_model: Path, blimp_dir: Path, read_only_dir: Path) -> None:
    assert run_into(capsys, read_only_dir, tiny_model, blimp_dir) == 2
    one_line(capsys.readouterr().err, f"cannot write to {read_only_dir}: permission denied")
    assert run_into(capsys, read_only_dir / "new" / "out", tiny_model, blimp_dir) == 2
    one_line(capsys.readouterr().err, f"cannot write to {read_only_dir / 'new' / 'out'}", "permission denied")
    assert list(read_only_dir.iterdir()) == []


def test_a_new_nested_output_is_fine_and_not_created(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "a" / "b")
    check_output_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_another_run_is_refused_before_its_model_loads(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    """The config is compared before anything loads, the data's pairs before the model loads: here
    the model is gone, so only a refusal that comes first can be the one error line."""
    model, data, out = tmp_path / "model", tmp_path / "blimp", tmp_path / "out"
    shutil.copytree(tiny_model, model)
    data.mkdir()
    shutil.copy(blimp_dir / "anaphor_gender_agreement.jsonl", data)
    base = [
        "run",
        "--model",
        str(model),
        "--tasks",
        "blimp_anaphor_gender_agreement",
        "--data-dir",
        str(data),
        "--limit",
        "2",
        "--metric",
        "overlap",
        "--output",
        str(out),
    ]
    capsys.readouterr()
    assert main(base) == 0
    assert capsys.readouterr().out.strip().endswith(f"wrote results.json and pairs.jsonl in {out.resolve()}")
    shutil.rmtree(model)

    assert main([*base, "--seed", "1"]) == 2  # another config
    one_line(capsys.readouterr().err, f"{out} holds another run (seed differ)", "--overwrite")
    assert main([*base, "--topk", "0.5"]) == 2  # the option of a plugin whose units are stored
    one_line(capsys.readouterr().err, "holds another run (topk.topk differ)")
    assert main([*base, "--normalise", "tokens"]) == 2  # accuracy stores no units: the same run
    one_line(capsys.readouterr().err, str(model))  # so the model loads (and is missing)

    original = (data / "anaphor_gender_agreement.jsonl").read_text()
    (data / "anaphor_gender_agreement.jsonl").write_text(
        "".join(line for line in original.splitlines(keepends=True)[::-1])
    )
    assert main(base) == 2  # the same config, other pairs: refused once the data is read
    one_line(capsys.readouterr().err, "holds another run (the tasks or pairs of blimp_anaphor_gender_agreement differ)")
    (data / "anaphor_gender_agreement.jsonl").write_text(original)
    assert main(base) == 2  # the same run: the model loads, and is missing
    err = capsys.readouterr().err
    one_line(err, str(model))
    assert "holds another run" not in err
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 0
