"""FTGD controls on a tiny model: mask kinds, general-text perplexity, capped re-scoring."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from lingspace_harness_plugins.ftgd.controls import PerplexityText, source_mask
from lingspace_harness_plugins.ftgd.probing import Tuning, tuned_row
from lingspace_harness_plugins.ftgd.tuner import FTGDSettings

from lingspace_harness import RunConfig, load_harness
from lingspace_harness.cli import main
from lingspace_harness.runner import prepare

TASKS = ["blimp_anaphor_gender_agreement", "blimp_anaphor_number_agreement", "blimp_passive_2"]
TEXT = "The river ran quietly past the old mill.\n\nShe bought bread, cheese and apples at the market.\n"


def run(model: Path, blimp_dir: Path, out: Path, *extra: str) -> dict:
    assert (
        main(
            [
                "run",
                "--model",
                str(model),
                "--tasks",
                ",".join(TASKS),
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "12",
                "--metric",
                "transfer",
                "--output",
                str(out),
                "--ftgd-lr",
                "3e-3",
                "--ftgd-steps",
                "4",
                "--ftgd-eval-every",
                "2",
                *extra,
            ]
        )
        == 0
    )
    return json.loads((out / "results.json").read_text())


@pytest.fixture
def ctx(tiny_model: Path, blimp_dir: Path, tmp_path: Path):
    config = RunConfig(
        model=str(tiny_model),
        tasks=TASKS,
        metrics=["transfer"],
        data_dir=blimp_dir,
        limit=12,
        output=tmp_path / "out",
        options={"topk": {"topk": 0.05}},
    )
    return prepare(load_harness(), config)


def test_random_and_magnitude_masks(ctx) -> None:
    source, other = TASKS[0], TASKS[1]
    topk = source_mask(ctx, "topk", source, 0)
    random = source_mask(ctx, "random", source, 0)
    magnitude = source_mask(ctx, "magnitude", source, 0)
    assert topk.size == random.size == magnitude.size == round(0.05 * ctx.gradient_layout.size)
    for mask in (random, magnitude):
        assert np.all(np.diff(mask) > 0) and mask[-1] < ctx.gradient_layout.size
        assert not np.array_equal(mask, topk)
    assert np.array_equal(random, source_mask(ctx, "random", source, 0))  # reproducible
    assert not np.array_equal(random, source_mask(ctx, "random", source, 1))  # seeded
    assert not np.array_equal(random, source_mask(ctx, "random", other, 0))  # per source
    flat = np.concatenate([p.detach().abs().numpy().ravel() for _, p in ctx.gradient_params])
    chosen = np.zeros(flat.size, dtype=bool)
    chosen[magnitude] = True
    assert flat[chosen].min() >= flat[~chosen].max()  # the largest |θ|
    assert source_mask(ctx, "full", source, 0) is None


@pytest.mark.parametrize("kind", ["random", "magnitude", "full"])
def test_each_mask_end_to_end(kind: str, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    results = run(tiny_model, blimp_dir, tmp_path / "out", "--ftgd-mask", kind, "--ftgd-patience", "5")
    space = results["spaces"]["transfer"]
    assert space["mask"] == kind and results["config"]["options"]["metric"]["transfer"]["ftgd_mask"] == kind
    n_params = sum(
        p.numel()
        for _, p in prepare(
            load_harness(), RunConfig(model=str(tiny_model), tasks=TASKS[:1], data_dir=blimp_dir, limit=12)
        ).gradient_params
    )
    expected = n_params if kind == "full" else round(0.01 * n_params)
    assert space["n_tuned"] == [expected] * len(TASKS)
    assert np.isfinite(np.array(space["matrix"], dtype=float)).any()
    assert any(p.name.startswith("transfer") for p in (tmp_path / "out" / "units").iterdir())


def test_unit_key_has_the_mask_kind(ctx) -> None:
    from lingspace_harness_plugins.ftgd.probing import _store

    settings = FTGDSettings()
    stores = {kind: _store(ctx, Tuning("transfer", settings, mask=kind)) for kind in ("topk", "random")}
    assert stores["topk"].key != stores["random"].key and stores["random"].config["mask"]["kind"] == "random"


def test_perplexity_on_a_text_file(ctx, tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    text = tmp_path / "prose.txt"
    text.write_text(TEXT)
    results = run(tiny_model, blimp_dir, tmp_path / "out", "--perplexity-text", str(text))
    space = results["spaces"]["transfer"]
    assert space["perplexity_on"] == "file:prose.txt"
    assert space["perplexity_text"] == {"file": "prose.txt", "sha256": hashlib.sha256(text.read_bytes()).hexdigest()}
    lines = [line for line in TEXT.splitlines() if line]
    encoded = ctx.model.tokenizer([" " + s for s in lines], add_special_tokens=False)["input_ids"]
    n_tokens = sum(len(e) for e in encoded)
    expected = math.exp(-float(np.sum(ctx.access.score(lines))) / n_tokens)
    assert space["perplexity_before"] == pytest.approx(expected, rel=1e-6)
    assert len(space["blimp_perplexity_change"]) == len(TASKS)
    plain = run(tiny_model, blimp_dir, tmp_path / "plain")["spaces"]["transfer"]
    assert plain["perplexity_on"] == "blimp-good-test" and "perplexity_text" not in plain
    assert plain["perplexity_before"] != pytest.approx(expected)


@pytest.mark.parametrize("content", [None, "", "\n  \n"])
def test_missing_or_empty_text_is_one_line(content, tmp_path: Path, capsys) -> None:
    text = tmp_path / "prose.txt"
    if content is not None:
        text.write_text(content)
    code = main(
        [
            "run",
            "--model",
            str(tmp_path / "no-model"),
            "--tasks",
            TASKS[0],
            "--metric",
            "transfer",
            "--output",
            str(tmp_path / "out"),
            "--perplexity-text",
            str(text),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--perplexity-text" in err
    assert not (tmp_path / "out").exists()


def test_targets_rescore_the_same_first_pairs(ctx) -> None:
    seen: dict[str, list] = {}
    score_pairs = ctx.score_pairs

    def spy(pairs_by_task, desc="scoring"):
        out = score_pairs(pairs_by_task, desc)
        seen.update(out)
        return out

    ctx.score_pairs = spy
    tuning = Tuning("transfer", FTGDSettings(lr=3e-3, steps=4, eval_every=2, patience=5), targets=2)
    row = tuned_row(ctx, tuning, TASKS[0])
    assert row["tuned"] and row["n_targets"] == {t: 2 for t in TASKS}
    base = ctx.scores("test")
    for t in TASKS:
        assert [s.pair_id for s in seen[t]] == [p.pair_id for p in ctx.data[t].test[:2]]
        assert len(ctx.data[t].test) > 2
        eval1 = np.mean([s.margin for s in base[t][:2]])
        assert row["margin"][t] == pytest.approx(np.mean([s.margin for s in seen[t]]) - eval1)


def test_lookahead_targets_cap_the_rescored_pairs(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                ",".join(TASKS),
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "12",
                "--metric",
                "lookahead",
                "--output",
                str(tmp_path / "out"),
                "--lookahead-lr",
                "3e-3",
                "--lookahead-steps",
                "2",
                "--lookahead-targets",
                "3",
            ]
        )
        == 0
    )
    space = json.loads((tmp_path / "out" / "results.json").read_text())["spaces"]["lookahead"]
    assert space["targets_per_task"] == {t: 3 for t in TASKS}


def test_base_text_perplexity_is_measured_once_per_run(ctx, tmp_path: Path) -> None:
    from lingspace_harness_plugins.ftgd import probing

    text = tmp_path / "prose.txt"
    text.write_text(TEXT)
    tuning = Tuning("transfer", FTGDSettings(lr=3e-3, steps=2, eval_every=2), text=PerplexityText.read(str(text)))
    calls = []
    measure = probing.text_perplexity

    def spy(c, t):
        calls.append(t.sha256)
        return measure(c, t)

    base = measure(ctx, tuning.text)
    probing.text_perplexity = spy
    try:
        rows = [tuned_row(ctx, tuning, source) for source in TASKS]
    finally:
        probing.text_perplexity = measure
    assert all(r["perplexity_before"] == base for r in rows)  # the stored value is the untuned model's
    assert len(calls) == 1 + sum(r["tuned"] for r in rows)  # once for the base, once per tuned model
