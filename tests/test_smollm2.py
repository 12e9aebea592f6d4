"""End to end on the real SmolLM2-135M GGUF: the CLI over all 67 BLiMP paradigms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lingspace_harness.cli import main
from lingspace_harness.config import cache_dir

pytestmark = pytest.mark.slow


def test_cli_on_smollm2_gguf(smollm2_gguf: Path, blimp_dir: Path, tmp_path: Path, capsys) -> None:
    def run(out: Path, *extra: str) -> dict:
        assert (
            main(
                [
                    "run",
                    "--model",
                    str(smollm2_gguf),
                    "--tasks",
                    "blimp_*",
                    "--data-dir",
                    str(blimp_dir),
                    "--limit",
                    "10",
                    "--output",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        return json.loads((out / "results.json").read_text())

    bos = run(tmp_path / "bos")
    assert len(bos["tasks"]) == 67
    model = bos["model"]
    assert model["n_params"] == 134_515_008 and model["dtype"] == "float32" and model["loader"] == "gguf"
    assert model["revision"].startswith("sha256:")
    cached = cache_dir() / "gguf" / model["revision"].removeprefix("sha256:")[:16]
    assert (cached / "config.json").is_file() and (cached / "model.safetensors").is_file()
    mean = sum(t["accuracy"] for t in bos["tasks"].values()) / 67
    assert 0.6 < mean < 0.9  # far above chance (0.5): the dequantised weights are right

    eot = run(tmp_path / "eot", "--prefix-token", "<|endoftext|>")
    assert eot["model"]["prefix_token_id"] != bos["model"]["prefix_token_id"]
    eot_mean = sum(t["accuracy"] for t in eot["tasks"].values()) / 67
    assert eot_mean > mean  # SmolLM2-Instruct prefers <|endoftext|> to its BOS <|im_start|>
    print(f"SmolLM2 mean accuracy, 67 x 10 test pairs: BOS {mean:.3f}, <|endoftext|> {eot_mean:.3f}")
