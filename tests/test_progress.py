"""Progress off a terminal: a line per bar at most every interval, and one at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lingspace_harness import UserError
from lingspace_harness.progress import progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stderr_file(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[str]]]:
    """Progress switched on, stderr not a terminal; calling it gives the progress lines so far."""
    for name in ("LINGSPACE_NO_PROGRESS", "LINGSPACE_QUIET", "LINGSPACE_PROGRESS_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    assert not sys.stderr.isatty()
    yield lambda: progress_lines(capsys.readouterr().err)


def progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("progress: ")]


def test_a_line_at_most_every_interval_and_one_at_the_end(stderr_file: Callable[[], list[str]]) -> None:
    clock = FakeClock()
    with progress_bar(10, "units", unit="unit", clock=clock) as bar:  # the default interval: 30 s
        for step in (10, 10, 11, 5, 29, 1):  # updates at +10, +20, +31, +36, +65, +66 s
            clock.now += step
            bar.update(1)
            bar.set_postfix_str("gradient:blimp_x", refresh=False)
    out = stderr_file()
    assert out == [
        "progress: units: 3/10 unit (10.3 s/unit, 31s elapsed, ETA 1m12s) [gradient:blimp_x]",
        "progress: units: 5/10 unit (13 s/unit, 1m05s elapsed, ETA 1m05s) [gradient:blimp_x]",
        "progress: units: done, 6/10 unit in 1m06s (11 s/unit)",
    ]


def test_the_interval_comes_from_the_environment(
    stderr_file: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINGSPACE_PROGRESS_INTERVAL", "5")
    clock = FakeClock()
    with progress_bar(4, "sentences", unit="sent", clock=clock) as bar:
        for _ in range(4):
            clock.now += 3
            bar.update(1)
    assert [line.split(" (")[0] for line in stderr_file()] == [
        "progress: sentences: 2/4 sent",
        "progress: sentences: 4/4 sent",
        "progress: sentences: done, 4/4 sent in 12s",
    ]
    monkeypatch.setenv("LINGSPACE_PROGRESS_INTERVAL", "soon")
    with pytest.raises(UserError, match="LINGSPACE_PROGRESS_INTERVAL"):
        progress_bar(1, "x")


def test_a_slow_step_still_shows_lines_between_updates(stderr_file: Callable[[], list[str]]) -> None:
    with progress_bar(2, "tuning", interval=0.05):
        time.sleep(0.4)  # no update at all: the timer writes the lines
    out = stderr_file()
    assert len(out) >= 3 and out[0].startswith("progress: tuning: 0/2 it (") and "ETA ?" in out[0]
    assert out[-1].startswith("progress: tuning: done, 0/2 it in")


@pytest.mark.parametrize("variable", ["LINGSPACE_QUIET", "LINGSPACE_NO_PROGRESS"])
def test_quiet_and_no_progress_write_nothing(
    variable: str, stderr_file: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "1")
    clock = FakeClock()
    with progress_bar(3, "units", clock=clock, interval=0) as bar:
        bar.update(3)
    assert stderr_file() == []


def test_a_run_under_nohup_shows_progress_unless_quiet(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """A real ``lingspace-harness run`` with stderr in a file: lines during the units stage, and at its end."""
    env = {k: v for k, v in os.environ.items() if k not in ("LINGSPACE_NO_PROGRESS", "LINGSPACE_QUIET")}
    env["LINGSPACE_PROGRESS_INTERVAL"] = "0"  # a line at every step
    args = [
        sys.executable,
        "-m",
        "lingspace_harness.cli",
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        "blimp_anaphor_*",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "4",
        "--metric",
        "gradsim",
    ]
    for extra, expect_lines in (([], True), (["--quiet"], False)):
        log = tmp_path / f"stderr{len(extra)}.txt"
        with log.open("w") as handle:
            done = subprocess.run(
                args + ["--output", str(tmp_path / f"out{len(extra)}")] + extra,
                stderr=handle,
                stdout=subprocess.DEVNULL,
                env=env,
                timeout=300,
            )
        out = progress_lines(log.read_text())
        assert done.returncode == 0, log.read_text()
        if expect_lines:
            assert any(line.startswith("progress: units: 1/") for line in out), out
            assert any(line.startswith("progress: units: done, ") for line in out), out
        else:
            assert out == []
