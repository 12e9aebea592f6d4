"""``export-hf``: a plain transformers directory that the real ``lm_eval --model hf`` runs offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lingspace_harness.cli import main

pytestmark = pytest.mark.integration  # exports models (and runs the lm_eval CLI on one)

PARADIGM = "anaphor_gender_agreement"


def test_exported_tiny_model_runs_in_lm_eval_offline(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "export"
    assert main(["export-hf", str(tiny_model), str(out)]) == 0
    assert Path(capsys.readouterr().out.strip()) == out
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt"))]
    ids = torch.tensor([[5, 17, 42, 99]])
    original, exported = (AutoModelForCausalLM.from_pretrained(d).eval() for d in (tiny_model, out))
    with torch.no_grad():
        assert torch.equal(original(ids).logits, exported(ids).logits)

    assert main(["yaml-path", "--data-dir", str(blimp_dir), "--write", str(tmp_path / "yaml")]) == 0
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
            f"pretrained={out}",
            "--tasks",
            f"lingspace_blimp_{PARADIGM}",
            "--include_path",
            str(tmp_path / "yaml"),
            "--device",
            "cpu",
            "--batch_size",
            "64",
            "--limit",
            "200",
            "--output_path",
            str(tmp_path / "lm_eval"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = (tmp_path / "lm_eval").rglob("results_*.json")
    acc = json.loads(found.read_text())["results"][f"lingspace_blimp_{PARADIGM}"]["acc,none"]
    assert 0.0 <= acc <= 1.0


def test_export_refuses_what_it_cannot_write(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["export-hf", str(tiny_model), str(taken)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: export-hf: {taken} exists and is not empty (--force replaces it)"
    ]
    assert (taken / "keep.txt").read_text() == "mine"
    assert main(["export-hf", f"lm_eval:hf,pretrained={tiny_model}", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: export-hf: the 'lm_eval' loader gives no transformers model")
    assert not (tmp_path / "x").exists()
    assert main(["export-hf", str(tiny_model), str(taken), "--force"]) == 0
    assert (taken / "config.json").is_file() and not (taken / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written directory left


@pytest.mark.slow
def test_exported_gguf_equals_the_gguf_loader(
    smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from lingspace_harness import ModelOptions, load_harness
    from lingspace_harness.models import resolve_loader

    monkeypatch.setenv("LINGSPACE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "smol"
    assert main(["export-hf", str(smollm2_gguf), str(out)]) == 0
    loader, spec = resolve_loader(load_harness().model_loaders, str(smollm2_gguf))
    direct = loader.load(spec, ModelOptions(cache_dir=tmp_path / "cache")).model
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[1, 504, 2365, 314, 260]])
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, exported(ids).logits)
