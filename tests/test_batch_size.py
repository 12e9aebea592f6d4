"""``--batch-size auto``, the pass bounds derived from the batch size, and the ``hf`` loader's
``from_pretrained`` options (``--device-map``, ``--attn-implementation``, ``--trust-remote-code``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from lingspace_harness import ModelOptions, batch_size
from lingspace_harness.access import ModelAccess
from lingspace_harness.batch_size import DEFAULT, auto_batch_size, fits, gradient_batch, largest_fitting, scaled
from lingspace_harness.cli import main
from lingspace_harness.config import RunConfig
from lingspace_harness.errors import UserError
from lingspace_harness.pairs import MinimalPair


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--model",
        str(model),
        "--tasks",
        "blimp_passive_1,blimp_anaphor_number_agreement",
        "--data-dir",
        str(data),
        "--limit",
        "6",
        "--output",
        str(out),
        "--metric",
        "gradsim",
        *extra,
    ]


# ------------------------------------------------------------------ the search


def test_search_finds_the_largest_size_that_fits() -> None:
    tried: list[int] = []

    def forward(size: int) -> None:
        tried.append(size)
        if size > 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert largest_fitting(lambda n: fits(forward, n), 1024) == 100
    assert tried[:5] == [1024, 512, 256, 128, 64]  # halving first, then bisecting
    assert largest_fitting(lambda n: fits(forward, n), 80) == 80  # the start itself fits
    assert largest_fitting(lambda n: fits(forward, n), 1) == 1


def test_search_gives_up_at_one_and_lets_other_errors_through() -> None:
    def never(size: int) -> None:
        raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")

    with pytest.raises(UserError, match="out of memory even at one sentence"):
        largest_fitting(lambda n: fits(never, n), 64)

    def broken(size: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        largest_fitting(lambda n: fits(broken, n), 64)


def test_auto_tries_forward_and_backward_passes_on_an_accelerator(tiny_model: Path, monkeypatch) -> None:
    """Off the CPU, each try scores the longest sentences and takes a gradient of the longest
    pairs at that batch size; the largest that fits both wins."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lingspace_harness.gradients import select_parameters

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    access = ModelAccess(model, tokenizer, tokenizer.bos_token_id)
    sentences = [f"The {'big ' * (i % 7)}cat saw {i} dogs." for i in range(300)]
    pairs = [MinimalPair(str(i), sentences[i], sentences[i + 1]) for i in range(0, 300, 2)]
    seen: list[tuple[str, int]] = []
    score, gradient = ModelAccess.score, ModelAccess.gradient_differential

    def limited_score(self: ModelAccess, batch: list[str], *args: Any, **kwargs: Any) -> Any:
        seen.append(("score", self.batch_size))
        assert batch == sorted(batch, key=lambda s: -len(self.requests([s])[0][1]))  # the longest first
        return score(self, batch, *args, **kwargs)

    def limited_gradient(self: ModelAccess, batch: list[MinimalPair], *args: Any, **kwargs: Any) -> Any:
        seen.append(("gradient", self.batch_size))
        if self.batch_size > 37:  # the backward pass is what runs out
            raise torch.OutOfMemoryError("CUDA out of memory")
        return gradient(self, batch, *args, **kwargs)

    monkeypatch.setattr(ModelAccess, "score", limited_score)
    monkeypatch.setattr(ModelAccess, "gradient_differential", limited_gradient)
    assert auto_batch_size(access, sentences, pairs) == DEFAULT  # on the CPU: 128, nothing tried
    assert seen == []
    monkeypatch.setattr(batch_size, "input_device", lambda model: SimpleNamespace(type="fake"))
    assert auto_batch_size(access, sentences, pairs, select_parameters(model), start=256) == 37
    assert ("gradient", 38) in seen and access.batch_size == DEFAULT  # restored after the tries
    assert auto_batch_size(access, sentences, pairs, None, start=256) == 256  # scoring alone fits


def test_pass_bounds_are_todays_up_to_128_and_grow_above() -> None:
    from lingspace_harness import scoring

    assert [gradient_batch(b) for b in (1, 32, 64, 100, 128, 256, 1000)] == [1, 32, 64, 64, 64, 128, 500]
    assert scaled(scoring.LOGIT_BUDGET, 128) == scoring.LOGIT_BUDGET == scaled(scoring.LOGIT_BUDGET, 7)
    assert scaled(scoring.SOFTMAX_ROWS, 512) == 4 * scoring.SOFTMAX_ROWS
    assert scoring.softmax_rows(64, 64) == scoring.SOFTMAX_ROWS and scoring.softmax_rows(128, 64) == 64


# ------------------------------------------------------------------ runs


def test_auto_on_the_cpu_is_128_exactly(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, tmp_path / "fixed"))[0] == 0
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, tmp_path / "auto", "--batch-size", "auto"))[0] == 0
    fixed, auto = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("fixed", "auto"))
    assert auto["config"]["batch_size"] == "auto" and fixed["config"]["batch_size"] == 128
    assert auto["model"]["batch_size"] == fixed["model"]["batch_size"] == 128
    assert auto["tasks"] == fixed["tasks"] and auto["spaces"] == fixed["spaces"]
    assert (tmp_path / "auto" / "pairs.jsonl").read_text() == (tmp_path / "fixed" / "pairs.jsonl").read_text()
    units = sorted(p.name for p in (tmp_path / "auto" / "units").rglob("*") if p.is_file())
    assert units == sorted(p.name for p in (tmp_path / "fixed" / "units").rglob("*") if p.is_file())  # same keys
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["batch_size"] == 128


@pytest.mark.parametrize(
    ("value", "fragment"), [("0", "at least 1 or 'auto', got '0'"), ("foo", "at least 1 or 'auto', got 'foo'")]
)
def test_bad_batch_sizes_are_one_line(capsys, tiny_model: Path, tmp_path: Path, value: str, fragment: str) -> None:
    code, err = run_cli(capsys, "run", "--model", str(tiny_model), "--tasks", "blimp_*", "--batch-size", value)
    assert code == 2 and err.count("\n") == 1 and "--batch-size" in err and fragment in err


def test_a_run_json_from_before_these_options_still_resumes(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    """run.json written before --device-map and co. existed (no such keys) is the same run."""
    out = tmp_path / "out"
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, out))[0] == 0
    body = json.loads((out / "run.json").read_text())
    assert not {"device_map", "attn_implementation", "trust_remote_code"} & set(body["config"])
    assert "batch_size" not in body  # only auto records what it resolved to
    assert RunConfig.from_json(body["config"]).to_json() == body["config"]
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, out))[0] == 0  # resumes: not "another run"
    code, err = run_cli(capsys, *argv(tiny_model, blimp_dir, out, "--attn-implementation", "eager"))
    assert code == 2 and "another run" in err  # a new setting is another run


def test_device_and_device_map_together_are_refused(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path):
    code, err = run_cli(
        capsys, *argv(tiny_model, blimp_dir, tmp_path / "o", "--device", "cpu:0", "--device-map", "cpu")
    )
    assert code == 2 and err.count("\n") == 1 and "--device-map" in err


# ------------------------------------------------------------------ the hf loader's passthrough


def test_loader_options_reach_from_pretrained(tiny_model: Path, monkeypatch) -> None:
    from lingspace_harness_plugins.hf_models import HFLoader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls: dict[str, dict[str, Any]] = {}
    model_load, tokenizer_load = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained

    def spy(name: str, real: Any) -> Any:
        def load(*args: Any, **kwargs: Any) -> Any:
            calls[name] = kwargs
            return real(*args, **kwargs)

        return load

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy("model", model_load))
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy("tokenizer", tokenizer_load))
    options = ModelOptions(device_map="cpu", attn_implementation="eager", trust_remote_code=True)
    loaded = HFLoader().load(str(tiny_model), options)
    assert calls["model"]["device_map"] == "cpu" and calls["model"]["attn_implementation"] == "eager"
    assert calls["model"]["trust_remote_code"] is True and calls["tokenizer"]["trust_remote_code"] is True
    assert loaded.device == "cpu"  # placed by the map, not moved
    HFLoader().load(str(tiny_model), ModelOptions())
    assert not {"device_map", "attn_implementation", "trust_remote_code"} & set(calls["model"])  # as before


def test_eager_and_sdpa_attention_agree(tiny_model: Path) -> None:
    from lingspace_harness_plugins.hf_models import HFLoader

    sentences = ["The cat saw the dogs.", "The cats sees the dog.", "Every boy likes himself."]
    scores = {}
    for attention in ("eager", "sdpa"):
        loaded = HFLoader().load(str(tiny_model), ModelOptions(attn_implementation=attention))
        assert loaded.model.config._attn_implementation == attention
        access = ModelAccess(loaded.model, loaded.tokenizer, loaded.tokenizer.bos_token_id, method="trie")
        scores[attention] = access.score(sentences)
    assert abs(scores["eager"] - scores["sdpa"]).max() < 1e-4


def test_gguf_refuses_trust_remote_code_in_one_line(capsys, tmp_path: Path) -> None:
    from lingspace_harness_plugins.hf_models import GGUFLoader

    from lingspace_harness import ModelError

    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="--trust-remote-code does not apply to a GGUF file"):
        GGUFLoader().load(str(path), ModelOptions(trust_remote_code=True))


def test_auto_resolves_once_per_output_directory(capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """A resume (or a worker, a shard, merge) reuses the number run.json recorded for auto."""
    out = tmp_path / "out"
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, out, "--batch-size", "auto"))[0] == 0
    body = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**body, "batch_size": 5}))
    assert run_cli(capsys, *argv(tiny_model, blimp_dir, out, "--batch-size", "auto"))[0] == 0
    assert json.loads((out / "results.json").read_text())["model"]["batch_size"] == 5
