"""``sweep --emit slurm|ray|commands``: job files written without loading any model, whose
commands, run here one by one, give the serial sweep's spaces; one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from lingspace_harness_plugins.compare import SweepCommand, _compare_options

from lingspace_harness.cli import main

RUN = ["--tasks", "blimp_anaphor_*,blimp_passive_*", "--limit", "8", "--metric", "gradsim,overlap"]


def _shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``lingspace-harness`` first on PATH that only records its cwd and argv, a JSON list a line."""
    bin_dir, log = tmp_path / "shim", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    program = bin_dir / "lingspace-harness"
    program.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n    f.write(json.dumps([os.getcwd(), *sys.argv[1:]]) + '\\n')\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[list[str]]:
    """The recorded calls (each run from the directory the sweep was emitted in), and forget them."""
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    assert {c[0] for c in calls} == {os.getcwd()}
    return [c[1:] for c in calls]


def _bash(script: str, task: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(task)
    return subprocess.run(["bash", script], env=env, capture_output=True, text=True)


def test_emitted_jobs_run_here_give_the_serial_sweeps_spaces(
    tiny_model_factory, blimp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    log = _shim(tmp_path, monkeypatch)
    models = ",".join(str(tiny_model_factory(a)) for a in ("gpt2", "gpt_neox"))
    sweep = ["sweep", "--models", models, "--labels", "small,neox", "--permutations", "19", "--bootstraps", "20"]
    run = ["--", *RUN, "--data-dir", str(blimp_dir)]
    emit = [*sweep, "--output", "jobs", "--emit", "slurm", "--shards", "2", *run]
    assert main(emit) == 0
    assert "sbatch --dependency=afterok:$jid jobs/sweep-finish.sh" in capsys.readouterr().out
    files = {p: p.read_bytes() for p in (Path("jobs/sweep.sbatch"), Path("jobs/sweep-finish.sh"))}
    assert main(emit) == 0 and {p: p.read_bytes() for p in files} == files  # deterministic
    assert "#SBATCH --array=0-3" in files[Path("jobs/sweep.sbatch")].decode()

    for task in (3, 1, 2, 0):  # array tasks in any order
        assert _bash("jobs/sweep.sbatch", task).returncode == 0
    jobs = _calls(log)
    for task in (4, None):  # outside the array, or not in one: an error, no command
        assert _bash("jobs/sweep.sbatch", task).returncode != 0 and not log.exists()
    assert _bash("jobs/sweep-finish.sh").returncode == 0
    finish = _calls(log)
    assert [j[-4:] for j in jobs] == [
        ["--output", f"jobs/{label}", "--shard", f"{i}/2"]
        for label, i in (("neox", 1), ("small", 1), ("neox", 0), ("small", 0))
    ]
    assert [f[:2] for f in finish] == [["merge", "jobs/small"], ["merge", "jobs/neox"], ["compare", "jobs/small"]]
    for argv in [*jobs, *finish]:  # what the scheduler would run, here one after another
        assert main(argv) == 0, argv
    assert main([*sweep, "--output", "serial", *run]) == 0  # the plain serial sweep

    for label in ("small", "neox"):
        sharded, serial = (json.loads(Path(d, label, "results.json").read_text()) for d in ("jobs", "serial"))
        assert sharded["spaces"].keys() == serial["spaces"].keys() == {"gradsim", "overlap"}
        for name, space in serial["spaces"].items():  # the same numbers, however the units ran
            assert sharded["spaces"][name]["tasks"] == space["tasks"]
            assert sharded["spaces"][name]["matrix"] == space["matrix"], name
    cmp_jobs, cmp_serial = (json.loads(Path(d, "comparison.json").read_text()) for d in ("jobs", "serial"))
    assert [r["label"] for r in cmp_jobs["runs"]] == [r["label"] for r in cmp_serial["runs"]] == ["small", "neox"]
    assert json.dumps(cmp_jobs["spaces"], sort_keys=True) == json.dumps(cmp_serial["spaces"], sort_keys=True)

    # the same jobs one a line for any scheduler, and one `run --executor ray` per run for Ray
    assert main([*sweep, "--output", "jobs", "--emit", "commands", "--shards", "2", *run]) == 0
    for line in reversed(Path("jobs/sweep-jobs.txt").read_text().splitlines()):
        assert subprocess.run(["bash", "-c", line]).returncode == 0
    assert sorted(_calls(log)) == sorted(jobs)
    assert main([*sweep, "--output", "jobs", "--emit", "ray", *run]) == 0
    assert _bash("jobs/sweep-ray.sh").returncode == 0
    serial_runs = [j[:-2] for j in jobs if j[-1] == "0/2"][::-1]  # small, then neox
    assert _calls(log) == [*(j + ["--executor", "ray"] for j in serial_runs), finish[-1]]


def test_emit_loads_nothing_and_passes_every_compare_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    log = _shim(tmp_path, monkeypatch)
    compare = ["--labels", "a,b", "--permutations", "7", "--seed", "3", "--order-by", "steps", "--bootstraps", "9"]
    compare += ["--control", "x", "--control", "y", "--hypothesis", "h.csv", "--allow-same-model"]
    argv = ["sweep", "--revisions", "step1,step2", "--output", "out dir", *compare, "--emit", "ray"]
    assert main([*argv, "--", "--model", "org/not-on-any-hub", "--tasks", "blimp_*"]) == 0  # nothing loads
    assert _bash("out dir/sweep-ray.sh").returncode == 0
    calls = _calls(log)
    assert calls[0][-6:] == ["--revision", "step1", "--output", "out dir/a", "--executor", "ray"]

    parser = argparse.ArgumentParser()
    SweepCommand().add_arguments(parser)
    sweep = parser.parse_args(argv[1:])
    cmp_parser = argparse.ArgumentParser()
    cmp_parser.add_argument("dirs", nargs="+")
    cmp_parser.add_argument("--output")
    _compare_options(cmp_parser)
    assert calls[-1][0] == "compare"
    got = cmp_parser.parse_args(calls[-1][1:])
    assert got.dirs == ["out dir/a", "out dir/b"] and got.output == "out dir"
    defaults = cmp_parser.parse_args(["d"])
    dests = {a.dest for a in cmp_parser._actions} - {"help", "dirs", "output"}
    for dest in dests:  # every compare option reaches compare (the test sets each to other than its default)
        assert getattr(got, dest) == getattr(sweep, dest) != getattr(defaults, dest), dest


@pytest.mark.parametrize(
    "extra, run, message",
    [
        (["--emit", "slurm", "--shards", "0"], [], "argument --shards: expected a whole number of at least 1"),
        (["--shards", "2"], [], "--shards N needs --emit slurm or --emit commands"),
        (["--emit", "ray", "--shards", "2"], [], "--shards N needs --emit slurm or --emit commands"),
        (["--emit", "ray"], ["--executor", "serial"], "--emit ray sets each run's --executor"),
        (["--emit", "slurm"], ["--shard", "0/2"], "leave --shard out of the run options"),
        (["--emit", "pbs"], [], "argument --emit: invalid choice"),
        (["--emit", "slurm", "--no-output"], [], "the following arguments are required: --output"),
    ],
)
def test_emit_errors_are_one_line(tmp_path: Path, capsys, extra: list[str], run: list[str], message: str) -> None:
    out = tmp_path / "out"
    argv = ["sweep", "--models", "org/a@step1,org/b@step2", "--output", str(out), *extra, "--", "--tasks", "t", *run]
    if "--no-output" in argv:
        argv = [a for a in argv if a not in ("--no-output", "--output", str(out))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and message in err, err
    assert not out.exists()


def test_emit_over_revisions_needs_the_runs_model(tmp_path: Path, capsys) -> None:
    argv = [
        "sweep",
        "--revisions",
        "step1,step2",
        "--output",
        str(tmp_path / "o"),
        "--emit",
        "slurm",
        "--",
        "--tasks",
        "t",
    ]
    assert main(argv) == 2
    assert "give --model in the run options" in capsys.readouterr().err
    assert main([*argv, "--model", "org/m"]) == 0
    text = (tmp_path / "o" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-1" in text and "--revision step2 --output" in text and "--shard" not in text
    assert (
        "lingspace-harness merge" not in (tmp_path / "o" / "sweep-finish.sh").read_text()
    )  # unsharded runs need no merge
    assert f"--output {shlex.quote(str(tmp_path / 'o' / 'step2'))} ;;" in text
