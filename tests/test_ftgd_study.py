"""benchmarks/ftgd_study.py tunes in-process with the transfer metric's code: its spaces must
be the CLI's, its stored settings must be reused, and a change of its parameters must not be."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from lingspace_harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


def load_study():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports its sibling record.py
    try:
        spec = importlib.util.spec_from_file_location("ftgd_study", ROOT / "benchmarks" / "ftgd_study.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def study(monkeypatch, model: Path, blimp_dir: Path, out: Path, *extra: str) -> None:
    argv = [
        "ftgd_study.py",
        "--model",
        str(model),
        "--data-dir",
        str(blimp_dir),
        "--out",
        str(out),
        "--tasks",
        "2",
        "--limit",
        "8",
        "--masks",
        "topk,random,full",
        "--lrs",
        "3e-3",
        "--ks",
        "0.05",
        "--steps",
        "2",
        "--batch",
        "4",
        "--threads",
        str(torch.get_num_threads()),
        *extra,
    ]  # leave the process's threads as they are
    monkeypatch.setattr(sys, "argv", argv)
    threads = torch.get_num_threads()
    try:
        load_study().main()
    finally:
        torch.set_num_threads(threads)


def test_study_equals_the_cli_and_resumes(
    monkeypatch, capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    study(monkeypatch, tiny_model, blimp_dir, tmp_path / "study")
    table = capsys.readouterr().out
    assert table.count("| topk | 0.003 | 5.0% |") == 1 and "| full | 0.003 | — |" in table
    assert "| 0.003 | 5.0% | random |" in table  # FTGD against its control
    record = json.loads((tmp_path / "study" / "random-lr0.003-k0.05.json").read_text())
    tasks = record["space"]["tasks"]
    assert record["params"]["fingerprints"]["model"]  # other weights or data are never served these rows
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert record["provenance"]["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--data-dir",
                str(blimp_dir),
                "--tasks",
                ",".join(tasks),
                "--limit",
                "8",
                "--metric",
                "transfer",
                "--output",
                str(tmp_path / "cli"),
                "--topk",
                "0.05",
                "--ftgd-mask",
                "random",
                "--ftgd-lr",
                "3e-3",
                "--ftgd-steps",
                "2",
                "--ftgd-eval-every",
                "2",
                "--ftgd-batch",
                "4",
                "--perplexity-text",
                str(ROOT / "plugins" / "ftgd" / "general_text.txt"),
            ]
        )
        == 0
    )
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())["spaces"]["transfer"]
    assert np.allclose(
        np.array(cli["matrix"], float), np.array(record["space"]["matrix"], float), rtol=0, atol=1e-9, equal_nan=True
    )
    assert cli["perplexity_change"] == record["space"]["perplexity_change"]
    capsys.readouterr()
    study(monkeypatch, tiny_model, blimp_dir, tmp_path / "study")  # all stored: the same table again
    assert capsys.readouterr().out.split("\n")[3:] == table.split("\n")[3:]
    study(monkeypatch, tiny_model, blimp_dir, tmp_path / "study", "--lrs", "3e-3,1e-2", "--table-only")
    out = capsys.readouterr().out
    assert "not run yet: topk-lr0.01-k0.05" in out and "| topk | 0.003 | 5.0% |" in out
    assert not (tmp_path / "study" / "topk-lr0.01-k0.05.json").exists()  # --table-only tunes nothing
    study(monkeypatch, tiny_model, blimp_dir, tmp_path / "study", "--steps", "1")  # not the stored rows
    assert json.loads((tmp_path / "study" / "random-lr0.003-k0.05.json").read_text())["params"]["steps"] == 1


def test_the_default_rule() -> None:
    choice = load_study().choice

    def row(
        lr: float,
        gain: float,
        ppl: float,
        within: float = 1.0,
        mask: str = "topk",
        k: float = 0.01,
        diagonal: list[float] | None = None,
    ) -> tuple:
        return (
            mask,
            lr,
            k,
            {
                "target_margin": gain,
                "ppl_text": ppl,
                "within": within,
                "between": 0.5,
                "diagonal": np.array(diagonal or [gain] * 12),
            },
            0.0,
        )

    # gain per unit of perplexity increase; a setting that does not raise perplexity wins
    assert "lr 0.0003" in choice([row(1e-4, 2.0, 4.0), row(3e-4, 9.0, 3.0)])
    assert "rule: topk, lr 0.0001" in choice([row(1e-4, 2.0, -1.0), row(3e-4, 9.0, 3.0)])
    assert "lr 3e-05" in choice([row(3e-5, 3.0, -0.5), row(1e-4, 2.0, -1.0)])
    # within must exceed between; controls are never chosen
    assert "rule: topk, lr 0.0001" in choice([row(1e-4, 2.0, 4.0), row(3e-4, 9.0, 3.0, within=0.1)])
    assert choice([row(1e-4, 2.0, 1.0, mask="random")]).startswith("no topk")
    # the winner replaces the shipped default (lr 1e-4, k 1%) only if larger beyond noise, source by source
    assert "replace the default" in choice([row(1e-4, 2.0, -1.0), row(3e-4, 3.0, -1.0, k=0.001)])
    noisy = [3.0, 1.0] * 6  # mean 2.0 + 0.1, larger in half the sources
    assert "keep the default" in choice(
        [row(1e-4, 2.0, -1.0, diagonal=[2.0] * 12), row(3e-4, 2.1, -1.0, k=0.001, diagonal=[v + 0.1 for v in noisy])]
    )
