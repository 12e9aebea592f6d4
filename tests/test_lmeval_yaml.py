"""The packaged lm-eval task YAMLs, run by the real ``lm_eval`` CLI offline, agree with us."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lingspace_harness_plugins.blimp_yaml import write_local_yaml, yaml_path

from lingspace_harness.cli import main

PARADIGMS = ["anaphor_gender_agreement", "determiner_noun_agreement_2"]


def test_yaml_path_command(capsys, tmp_path: Path, blimp_dir: Path) -> None:
    assert main(["yaml-path"]) == 0
    root = Path(capsys.readouterr().out.strip())
    assert root == yaml_path() and (root / "blimp" / "_lingspace_blimp.yaml").is_file()
    assert main(["yaml-path", "--data-dir", str(blimp_dir), "--write", str(tmp_path / "local")]) == 0
    leaf = yaml.safe_load((tmp_path / "local" / "lingspace_blimp_passive_1.yaml").read_text())
    assert leaf["dataset_path"] == "json" and leaf["dataset_name"] is None
    assert Path(leaf["dataset_kwargs"]["data_files"]["train"]) == (blimp_dir / "passive_1.jsonl").resolve()
    assert main(["yaml-path", "--write", str(tmp_path / "x")]) == 2


@pytest.mark.integration  # runs the lm_eval CLI
def test_lm_eval_cli_on_local_yaml_agrees(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    assert main(["yaml-path", "--data-dir", str(blimp_dir), "--write", str(tmp_path / "yaml")]) == 0
    tasks = ",".join(f"lingspace_blimp_{p}" for p in PARADIGMS)
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model},dtype=float32",
            "--tasks",
            tasks,
            "--include_path",
            str(tmp_path / "yaml"),
            "--device",
            "cpu",
            "--batch_size",
            "32",
            "--output_path",
            str(tmp_path / "lm_eval"),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # lm-eval 0.5 knows `margin` from utils.py's registration, not as a placeholder
    assert "not found in registry" not in done.stdout + done.stderr
    (found,) = (tmp_path / "lm_eval").rglob("results_*.json")
    theirs = json.loads(found.read_text())["results"]

    out = tmp_path / "ours"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                ",".join(f"blimp_{p}" for p in PARADIGMS),
                "--data-dir",
                str(blimp_dir),
                "--split-fractions",
                "0,0,1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    ours = json.loads((out / "results.json").read_text())["tasks"]
    for p in PARADIGMS:
        assert ours[f"blimp_{p}"]["n_test"] == 1000
        assert theirs[f"lingspace_blimp_{p}"]["acc,none"] == ours[f"blimp_{p}"]["accuracy"]
        assert theirs[f"lingspace_blimp_{p}"]["margin,none"] == pytest.approx(ours[f"blimp_{p}"]["margin"], abs=1e-5)


def test_lm_eval_schema_report_is_readable_by_lm_eval(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    from lm_eval.utils import make_table

    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "blimp_passive_2,blimp_npi_present_1",
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "10",
                "--report",
                "lm_eval",
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    ours = json.loads((tmp_path / "results.json").read_text())["tasks"]
    theirs = json.loads((tmp_path / "results_lm_eval.json").read_text())
    assert set(theirs) >= {"results", "configs", "versions", "n-shot", "n-samples", "higher_is_better"}
    for task, fields in ours.items():
        assert theirs["results"][task]["acc,none"] == fields["accuracy"]
        assert theirs["n-samples"][task] == {"original": 10, "effective": 10}
        assert 0 <= theirs["results"][task]["acc_stderr,none"] <= 0.5
    table = make_table(theirs)
    assert "blimp_passive_2" in table and "margin" in table and "acc" in table


def test_margin_is_a_registered_lm_eval_metric(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """utils.py registers ``margin`` (mean, higher is better): lm-eval 0.5 then computes it even for
    a task without our process_results, as process_results does (lm-eval 0.4 computes only its own
    metrics there)."""
    import lm_eval
    from lingspace_harness_plugins.lm_eval_compat import prime_registries, version
    from lm_eval.api.registry import metric_registry
    from lm_eval.tasks import TaskManager

    local = tmp_path / "yaml"
    write_local_yaml(blimp_dir, local)
    leaf = f"lingspace_blimp_{PARADIGMS[0]}"
    (local / "bare_margin.yaml").write_text(f"include: {leaf}.yaml\ntask: bare_margin\nprocess_results: null\n")
    prime_registries()
    evaluated = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model},dtype=float32",
        tasks=[leaf, "bare_margin"],
        task_manager=TaskManager(include_path=str(local), include_defaults=False),
        limit=20,
        batch_size=32,
        device="cpu",
    )
    assert "margin" in metric_registry
    ours, bare = evaluated["results"][leaf], evaluated["results"]["bare_margin"]
    assert ours["acc,none"] == bare["acc,none"] and ours["margin,none"] != 0
    assert evaluated["higher_is_better"][leaf]["margin"] is True
    if version() >= (0, 5):
        assert bare["margin,none"] == pytest.approx(ours["margin,none"], abs=1e-9)
    else:
        assert "margin,none" not in bare
