"""Scoring through an lm-eval LM: ``--model lm_eval:NAME,ARGS`` (the ``lm_eval`` model loader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lingspace_harness.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")

TASKS = "blimp_anaphor_gender_agreement,blimp_regular_plural_subject_verb_agreement_1"


@pytest.fixture(autouse=True)
def _two_threads(torch_threads) -> None:
    torch_threads(2)


def _run(model: str, out: Path, blimp_dir: Path, *extra: str) -> int:
    return main(
        [
            "run",
            "--model",
            model,
            "--tasks",
            TASKS,
            "--data-dir",
            str(blimp_dir),
            "--limit",
            "40",
            "--output",
            str(out),
            *extra,
        ]
    )


def test_lm_eval_hf_scores_like_our_scorer(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    assert _run(str(tiny_model), tmp_path / "ours", blimp_dir) == 0
    assert _run(f"lm_eval:hf,pretrained={tiny_model}", tmp_path / "lm_eval", blimp_dir) == 0
    ours, theirs = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("ours", "lm_eval"))
    assert theirs["model"]["loader"] == "lm_eval" and theirs["model"]["name"] == f"lm_eval:hf,pretrained={tiny_model}"
    assert theirs["model"]["dtype"] == "float32" and theirs["model"]["prefix_token_id"] is None
    for task, fields in ours["tasks"].items():
        assert theirs["tasks"][task]["accuracy"] == fields["accuracy"]
        assert theirs["tasks"][task]["margin"] == pytest.approx(fields["margin"], abs=1e-4)
    rows = [
        [json.loads(line) for line in (tmp_path / d / "pairs.jsonl").read_text().splitlines()]
        for d in ("ours", "lm_eval")
    ]
    assert len(rows[0]) == len(rows[1]) == 80
    worst = 0.0
    for a, b in zip(*rows):
        assert (a["task"], a["pairID"]) == (b["task"], b["pairID"])
        # Each sentence's log-prob, not only the margin: a convention error (no leading space,
        # another prefix) moves these by far more than 1e-4.
        worst = max(worst, abs(a["logp_good"] - b["logp_good"]), abs(a["logp_bad"] - b["logp_bad"]))
    print(f"\nlargest |logp ours - logp lm_eval:hf| over 160 sentences: {worst:.2g}")
    assert worst <= 1e-4


@pytest.mark.parametrize("metric", ["gradsim", "overlap", "cka"])
def test_gradient_metrics_are_refused_before_anything_loads(
    metric: str, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The model directory does not exist: the refusal must come before any loading.
    model = f"lm_eval:hf,pretrained={tmp_path / 'missing'}"
    assert _run(model, tmp_path / "out", blimp_dir, "--metric", f"accuracy,{metric}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: metric {metric} needs a torch model; --model {model} only scores"]
    assert not (tmp_path / "out").exists()


def test_normalise_tokens_is_refused_before_anything_loads(
    blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Token counts come from our tokenisation, which a scoring-only model does not give."""
    model = f"lm_eval:hf,pretrained={tmp_path / 'missing'}"
    assert _run(model, tmp_path / "out", blimp_dir, "--normalise", "tokens") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--normalise tokens needs each sentence's token count" in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "model, expected",
    [
        ("lm_eval:hff,pretrained=x", "unknown lm-eval model 'hff'; did you mean 'hf'?"),
        (
            "lm_eval:hf,pretrained=/nonexistent/model",
            "could not load lm-eval model 'hf' (pretrained=/nonexistent/model)",
        ),
    ],
)
def test_lm_eval_model_errors_are_one_line(
    model: str, expected: str, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _run(model, tmp_path / "out", blimp_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_prefix_token_is_refused(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _run(f"lm_eval:hf,pretrained={tiny_model}", tmp_path / "out", blimp_dir, "--prefix-token", "42") == 2
    assert "--prefix-token does not apply" in capsys.readouterr().err
