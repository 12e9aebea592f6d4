"""``run --output``: a file, or a directory we may not write to, is one line and exit 2."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from lingspace_harness.cli import main
from lingspace_harness.results import check_output_dir


def run_into(capsys, output: Path, tiny_model: Path, blimp_dir: Path) -> int:
    capsys.readouterr()  # drop what building the tiny model printed
    return main(["run", "--model", str(tiny_model), "--tasks", "blimp_passive_1", "--data-dir", str(blimp_dir),
                 "--limit", "2", "--output", str(output)])


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
        pytest.skip("running as root, and `chattr +i` (the only way to deny root a write) is unavailable "
                    "or unsupported on this file system")
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
