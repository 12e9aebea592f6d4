"""The CLI: exit codes, one-line errors, the results contract, determinism, interruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lingspace_harness import MetricResult, Task, hookimpl
from lingspace_harness.cli import main
from lingspace_harness.pairs import read_pairs_jsonl

TASKS = "blimp_anaphor_gender_agreement,blimp_passive_*"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_writes_the_results_contract(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        capsys,
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        TASKS,
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "6",
        "--output",
        str(out),
        "--report",
        "markdown",
    )
    assert code == 0 and "3 tasks" in stdout
    assert stdout.strip().endswith(f"; wrote results.json, pairs.jsonl and summary.md in {out.resolve()}")
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["version", "config", "execution", "model", "tasks", "spaces", "analysis", "fingerprints"]
    assert results["config"]["limit"] == 6 and results["config"]["tasks"] == TASKS.split(",")
    assert results["model"]["n_params"] > 0 and results["model"]["dtype"] == "float32"
    assert results["model"]["revision"] is None
    assert list(results["tasks"]) == ["blimp_anaphor_gender_agreement", "blimp_passive_1", "blimp_passive_2"]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 18
    for name, task in results["tasks"].items():
        assert task["n_test"] == task["n_train"] == task["n_validation"] == 6
        mine = [p for p in pairs if p["task"] == name]
        margins = [p["logp_good"] - p["logp_bad"] for p in mine]
        assert task["accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 6)
        assert task["margin"] == pytest.approx(sum(margins) / 6)
    source = {p.pair_id: p for p in read_pairs_jsonl(blimp_dir / "passive_2.jsonl")}
    for p in pairs:
        if p["task"] == "blimp_passive_2":
            assert (p["sentence_good"], p["sentence_bad"]) == (source[p["pairID"]].good, source[p["pairID"]].bad)
    assert "| blimp_passive_1 |" in (out / "summary.md").read_text()


def test_same_seed_same_numbers(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    def run(seed: str, out: Path) -> dict:
        assert (
            main(
                [
                    "run",
                    "--model",
                    str(tiny_model),
                    "--tasks",
                    "blimp_passive_1",
                    "--data-dir",
                    str(blimp_dir),
                    "--limit",
                    "5",
                    "--seed",
                    seed,
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
        return json.loads((out / "results.json").read_text())["tasks"]

    assert run("1", tmp_path / "a") == run("1", tmp_path / "b")
    a = (tmp_path / "a" / "pairs.jsonl").read_text()
    assert a == (tmp_path / "b" / "pairs.jsonl").read_text()
    run("2", tmp_path / "c")
    assert a != (tmp_path / "c" / "pairs.jsonl").read_text()


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["run", "--model", "MODEL", "--tasks", "blimp_nope_*"], ["no task matches 'blimp_nope_*'"]),
        (["run", "--model", "MODEL", "--tasks", "blimp_passiv_1"], ["did you mean 'blimp_passive_1'"]),
        (["run", "--model", "./no/such/model", "--tasks", "blimp_passive_2"], ["model directory not found"]),
        (["run", "--model", "/no/such/file.gguf", "--tasks", "blimp_passive_2"], ["GGUF file not found"]),
        (["run", "--model", "MODEL", "--tasks", "blimp_passive_2", "--metric", "gradsimm"], ["unknown metric"]),
        (["run", "--model", "MODEL", "--tasks", "blimp_passive_2", "--limit", "0"], ["at least 1"]),
        (
            ["run", "--model", "MODEL", "--tasks", "blimp_passive_2", "--prefix-token", "<nope>"],
            ["not a token of this tokenizer"],
        ),
        (["run", "--tasks", "blimp_passive_2"], ["--model"]),
        (
            [
                "run",
                "--model",
                "MODEL",
                "--tasks",
                "blimp_passive_2",
                "--metric",
                "gradsim",
                "--split-fractions",
                "0,0,1",
            ],
            ["learns from training pairs", "'blimp_passive_2' has none"],
        ),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_user_errors_exit_2_with_one_line(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    argv = [str(tiny_model) if a == "MODEL" else a for a in argv]
    if argv[0] == "run":
        argv += ["--data-dir", str(blimp_dir), "--output", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    one_line_error(err, *fragments)
    assert not (tmp_path / "out" / "results.json").exists()


def test_verbose_shows_what_broke_a_model_file_underneath(capsys, blimp_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))  # the magic, then nothing a GGUF reader can use
    argv = [
        "run",
        "--model",
        str(broken),
        "--tasks",
        "blimp_passive_2",
        "--data-dir",
        str(blimp_dir),
        "--output",
        str(tmp_path / "out"),
    ]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    one_line_error(err, "could not load GGUF file")
    code, _, err = run_cli(capsys, *argv, "-v")
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: could not load GGUF file")
    assert "Traceback (most recent call last)" in err  # the cause the one line summarises, with its chain
    reason = lines[-1].split(f"{broken}: ", 1)[1]
    assert any(line.endswith(f": {reason}") for line in lines[:-1]), err  # "SomeError: reason", above the line
    assert not (tmp_path / "out" / "results.json").exists()


def test_malformed_row_is_one_line_with_file_and_line(
    capsys, lingspace_plugin, tiny_model: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence_good": "A cat runs.", "sentence_bad": "A cat run."}\n{oops\n')

    class Local:
        @hookimpl
        def lingspace_register_phenomena(self, register):
            register(
                Task(
                    name="local_bad",
                    phenomenon="p",
                    field="f",
                    source=str(bad),
                    load=lambda options: read_pairs_jsonl(bad),
                )
            )

    lingspace_plugin(Local(), "local")
    code, _, err = run_cli(
        capsys, "run", "--model", str(tiny_model), "--tasks", "local_bad", "--output", str(tmp_path / "out")
    )
    assert code == 2
    one_line_error(err, f"{bad}:2:", "not valid JSON")


def test_offline_hub_without_data_says_how_to_supply_it(tiny_model: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LINGSPACE_BLIMP_DIR"}
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lingspace_harness.cli",
            "run",
            "--model",
            str(tiny_model),
            "--tasks",
            "blimp_passive_1",
            "--output",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    one_line_error(proc.stderr, "nyu-mll/blimp", "--data-dir", "LINGSPACE_BLIMP_DIR")


def test_interrupted_run_keeps_the_previous_results(
    capsys, lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        "blimp_passive_1",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "4",
        "--output",
        str(out),
        "--metric",
        "interrupt",
    ]

    class Interrupt:
        name, description = "interrupt", "stands for Ctrl-C in the middle of a run (when armed)"
        armed = False

        def compute(self, ctx):
            ctx.scores("test")
            if Interrupt.armed:
                raise KeyboardInterrupt
            return MetricResult()

    class Plugin:
        @hookimpl
        def lingspace_register_metrics(self, register):
            register(Interrupt())

    lingspace_plugin(Plugin(), "interrupt")
    assert main(args) == 0
    before = (out / "results.json").read_text(), (out / "pairs.jsonl").read_text()
    Interrupt.armed = True
    capsys.readouterr()
    code, _, err = run_cli(capsys, *args)  # the same run again (it resumes), interrupted
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert ((out / "results.json").read_text(), (out / "pairs.jsonl").read_text()) == before
    # besides the finished units (the resumable cache), nothing was left: no partial files
    assert sorted(p.name for p in out.iterdir()) == ["pairs.jsonl", "results.json", "run.json", "units"]
    assert not [p for p in out.rglob(".*")]


def test_metrics_and_tasks_listings(capsys) -> None:
    code, out, _ = run_cli(capsys, "metrics")
    assert code == 0 and out.startswith("accuracy\taccuracy\t")
    code, out, _ = run_cli(capsys, "tasks", "blimp_passive_*", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == ["blimp_passive_1", "blimp_passive_2"]
    assert rows[0]["phenomenon"] == "argument_structure" and rows[0]["field"] == "syntax"


def test_a_full_disk_is_one_line_and_keeps_finished_work(
    capsys, monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    import errno

    import numpy as np

    out = tmp_path / "out"
    args = [
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        "blimp_passive_*",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "4",
        "--metric",
        "gradsim",
        "--output",
        str(out),
    ]
    real_save = np.save
    saved: list[str] = []

    def save(handle, array, **kwargs):  # the second differential finds the disk full, as numpy says it
        if saved:
            raise OSError("Not enough free space to write 4096 bytes after offset 128")
        saved.append(handle.name)
        return real_save(handle, array, **kwargs)

    monkeypatch.setattr(np, "save", save)
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and os.strerror(errno.ENOSPC) in lines[0] and "rerun" in lines[0]
    assert not (out / "results.json").exists() and not list(out.rglob(".*"))  # no partial file
    assert len(list(out.rglob("*.npy"))) == 1  # the finished unit is kept
    monkeypatch.setattr(np, "save", real_save)
    assert run_cli(capsys, *args)[0] == 0


@pytest.mark.parametrize(
    "error",
    [
        lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 GiB total)"),
        lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"),
    ],
)
def test_out_of_memory_is_one_line_naming_the_option(
    capsys, monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path, error
) -> None:
    from lingspace_harness.access import ModelAccess

    def exhausted(*args, **kwargs):
        raise error()

    monkeypatch.setattr(ModelAccess, "score_counted", exhausted)
    argv = ["run", "--model", str(tiny_model), "--tasks", "blimp_passive_2", "--data-dir", str(blimp_dir)]
    code, _, err = run_cli(capsys, *argv, "--limit", "4", "--output", str(tmp_path / "out"))
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "out of memory" in lines[0] and "--batch-size" in lines[0]


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path):
    from lingspace_harness.access import ModelAccess

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(ModelAccess, "score_counted", broken)
    argv = ["run", "--model", str(tiny_model), "--tasks", "blimp_passive_2", "--data-dir", str(blimp_dir)]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main([*argv, "--limit", "4", "--output", str(tmp_path / "out")])
