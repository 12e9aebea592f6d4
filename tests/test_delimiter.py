"""Tasks scored after another delimiter than a space (lm-eval's ``target_delimiter``), and
``--normalise tokens``.

lm-eval's BLiMP-style tasks for other languages (BLiMP-NL, MultiBLiMP, ZhoBLiMP, TurBLiMP)
set ``target_delimiter: ""``: each choice is scored right after the prefix token, with no
space. The reference numbers come from the installed lm-eval at test time.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from lingspace_harness_plugins.lm_eval_compat import choice_delimiter

from lingspace_harness import MinimalPair, Task, TaskData
from lingspace_harness.cli import main
from lingspace_harness.fingerprints import digest, task_fingerprint

torch = pytest.importorskip("torch")
lm_eval = pytest.importorskip("lm_eval")

TOL = 1e-4
TASK = "lsdelim_nospace"
PARADIGM = "anaphor_gender_agreement"


@pytest.fixture(autouse=True)
def _two_threads(torch_threads) -> None:
    torch_threads(2)


def _rows(blimp_dir: Path, n: int = 12) -> list[dict[str, Any]]:
    lines = (blimp_dir / f"{PARADIGM}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [{k: json.loads(line)[k] for k in ("sentence_good", "sentence_bad", "pairID")} for line in lines]


def _write_task(
    tmp: Path,
    rows: list[dict[str, Any]],
    delimiter: str = "",
    choices: str = "{{[sentence_good, sentence_bad]}}",
    name: str = TASK,
) -> Path:
    """A two-choice lm-eval task YAML, as lm-eval's non-English BLiMPs write them, on local data."""
    data = (tmp / f"{name}.jsonl").resolve()
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tasks = tmp / "tasks"
    tasks.mkdir(exist_ok=True)
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(data)}, "cache_dir": str((tmp / "hf").resolve())},
        "test_split": "train",
        "output_type": "multiple_choice",
        "doc_to_text": "",
        "doc_to_choice": choices,
        "doc_to_target": 0,
        "target_delimiter": delimiter,
        "metric_list": [{"metric": "acc"}],
    }
    path = tasks / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def _lm_eval(model_dir: Path, tasks_dir: Path, names: list[str]) -> dict[str, Any]:
    import lm_eval.api.metrics  # noqa: F401  (fills lm-eval's registries before the TaskManager)
    import lm_eval.filters  # noqa: F401
    import lm_eval.models  # noqa: F401
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    evaluated = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=names,
        task_manager=manager,
        log_samples=True,
        batch_size=8,
        device="cpu",
    )
    assert evaluated is not None
    return evaluated


def _run(model: str, task_file: Path, out: Path, *extra: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rc = main(
        [
            "run",
            "--model",
            model,
            "--tasks",
            str(task_file),
            "--split-fractions",
            "0,0,1",
            "--metric",
            "accuracy",
            "--output",
            str(out),
            *extra,
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    return results, pairs


#: Three spellings of a context-free two-choice task: (target_delimiter, doc_to_choice).
SPELLINGS = {
    "bare": ("", "{{[sentence_good, sentence_bad]}}"),  # lm-eval's BLiMPs of other languages
    "delimited": (" ", "{{[sentence_good, sentence_bad]}}"),  # lm-eval's English BLiMP
    "spaced": ("", "{{[' ' ~ sentence_good, ' ' ~ sentence_bad]}}"),  # our task YAMLs
}


def test_each_spelling_is_scored_as_lm_eval_scores_it(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """Whatever the installed lm-eval puts before a choice (0.4: the target_delimiter; 0.5:
    nothing after an empty context), our delimiter plus our sentence is lm-eval's continuation."""
    rows = _rows(blimp_dir)
    names = {k: f"lsdelim_{k}" for k in SPELLINGS}
    files = {k: _write_task(tmp_path, rows, d, c, names[k]) for k, (d, c) in SPELLINGS.items()}
    evaluated = _lm_eval(tiny_model, tmp_path / "tasks", list(names.values()))
    logps: dict[str, dict[str, float]] = {}
    results: dict[str, dict[str, Any]] = {}
    for k, (delimiter, _) in SPELLINGS.items():
        results[k], pairs = _run(str(tiny_model), files[k], tmp_path / f"run-{k}")
        ours = results[k]["tasks"][names[k]]
        assert ours["delimiter"] == choice_delimiter(delimiter) and ours["n_test"] == len(pairs) == len(rows)
        by_id = {p["pairID"]: p for p in pairs}
        samples = evaluated["samples"][names[k]]
        assert len(samples) == len(rows)
        for sample in samples:
            p = by_id[sample["doc"]["pairID"]]
            sentences = [ours["delimiter"] + p["sentence_good"], ours["delimiter"] + p["sentence_bad"]]
            assert [tuple(a) for a in sample["arguments"]] == [("", s) for s in sentences]
            # resps: one [(loglikelihood, is_greedy)] per request in 0.4 and 0.5 alike
            theirs = [float(r[0][0]) for r in sample["resps"]]
            worst = max(abs(p["logp_good"] - theirs[0]), abs(p["logp_bad"] - theirs[1]))
            assert worst <= TOL, f"{k}: |ours - lm-eval| = {worst:.3g} for pair {p['pairID']}"
        logps[k] = {str(p["pairID"]) + g: p[f"logp_{g}"] for p in pairs for g in ("good", "bad")}
        assert evaluated["results"][names[k]]["acc,none"] == pytest.approx(ours["accuracy"], abs=1e-12)

    # The comparison has teeth: with and without the space, every sentence scores differently ...
    assert min(abs(logps["bare"][s] - logps["spaced"][s]) for s in logps["bare"]) > 100 * TOL
    # ... and the task's fingerprint (hence every unit key) tells the two apart.
    assert results["bare"]["fingerprints"]["data"] != results["spaced"]["fingerprints"]["data"]
    # lm-eval's own English BLiMP spelling: spaced under 0.4, bare under 0.5.
    same = "spaced" if choice_delimiter(" ") == " " else "bare"
    assert max(abs(logps["delimited"][s] - logps[same][s]) for s in logps[same]) <= TOL


def test_lm_eval_model_scores_after_the_task_delimiter(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """A scoring-only model (``--model lm_eval:hf,...``) gets the delimiter too."""
    task_file = _write_task(tmp_path, _rows(blimp_dir, 6))
    _, ours = _run(str(tiny_model), task_file, tmp_path / "ours")
    _, theirs = _run(f"lm_eval:hf,pretrained={tiny_model}", task_file, tmp_path / "lm_eval")
    assert [p["pairID"] for p in ours] == [p["pairID"] for p in theirs]
    for a, b in zip(ours, theirs):
        assert abs(a["logp_good"] - b["logp_good"]) <= TOL and abs(a["logp_bad"] - b["logp_bad"]) <= TOL
        assert b["n_good"] is None and isinstance(a["n_good"], int)


def test_fingerprint_has_the_delimiter_only_when_not_a_space() -> None:
    pairs = [MinimalPair("1", "A cat runs.", "A cat run.")]

    def data(delimiter: str) -> TaskData:
        task = Task("t", "p", "f", "src", load=lambda options: pairs, delimiter=delimiter)
        return TaskData(task, [], [], pairs)

    before = digest({"train": [], "validation": [], "test": [["1", "A cat runs.", "A cat run."]]})
    assert task_fingerprint(data(" ")) == before  # earlier runs' units stay valid
    assert task_fingerprint(data("")) != before


def test_normalise_tokens(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    args = [
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        f"blimp_{PARADIGM}",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "12",
        "--metric",
        "accuracy",
    ]
    assert main([*args, "--output", str(tmp_path / "sum")]) == 0
    assert main([*args, "--normalise", "tokens", "--report", "lm_eval", "--output", str(tmp_path / "mean")]) == 0
    summed = json.loads((tmp_path / "sum" / "results.json").read_text())
    results = json.loads((tmp_path / "mean" / "results.json").read_text())
    assert summed["config"]["options"]["metric"]["accuracy"] == {"normalise": "none"}
    assert results["config"]["options"]["metric"]["accuracy"] == {"normalise": "tokens"}
    pairs = [json.loads(line) for line in (tmp_path / "mean" / "pairs.jsonl").read_text().splitlines()]
    same = [json.loads(line) for line in (tmp_path / "sum" / "pairs.jsonl").read_text().splitlines()]
    assert pairs == same  # normalising changes the metric, not the scores

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for p in pairs:  # counts: the sentence's tokens after the space (the prefix is context)
        assert p["n_good"] == len(tokenizer(" " + p["sentence_good"], add_special_tokens=False)["input_ids"])
        assert p["n_bad"] == len(tokenizer(" " + p["sentence_bad"], add_special_tokens=False)["input_ids"])
    margins = [p["logp_good"] / p["n_good"] - p["logp_bad"] / p["n_bad"] for p in pairs]
    task = results["tasks"][f"blimp_{PARADIGM}"]
    assert task["margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-12)
    assert task["accuracy"] == pytest.approx(sum(m > 0 for m in margins) / len(margins), abs=1e-12)
    sums = [p["logp_good"] - p["logp_bad"] for p in pairs]
    assert summed["tasks"][f"blimp_{PARADIGM}"]["margin"] == pytest.approx(sum(sums) / len(sums), abs=1e-12)
    assert abs(task["margin"] - summed["tasks"][f"blimp_{PARADIGM}"]["margin"]) > 1e-3
    # lm-eval's schema: its stderr is over the same per-token margins
    lm_eval_view = json.loads((tmp_path / "mean" / "results_lm_eval.json").read_text())["results"]
    stderr = statistics.stdev(margins) / math.sqrt(len(margins))
    assert lm_eval_view[f"blimp_{PARADIGM}"]["margin_stderr,none"] == pytest.approx(stderr, rel=1e-9)


def _access(tiny_model: Path) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lingspace_harness import ModelAccess

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    return ModelAccess(model, tokenizer, tokenizer.bos_token_id, method="trie", batch_size=8)


def test_model_access_honours_the_delimiter(tiny_model: Path, blimp_dir: Path) -> None:
    """Scores, token counts, tuning log-probs, margins and gradients all follow ``delimiter``."""
    import numpy as np

    from lingspace_harness.gradients import select_parameters

    access = _access(tiny_model)
    pairs = [MinimalPair(r["pairID"], r["sentence_good"], r["sentence_bad"]) for r in _rows(blimp_dir, 4)]
    sentences = [s for p in pairs for s in (p.good, p.bad)]
    tok = access.tokenizer
    bare, spaced = access.score(sentences, delimiter=""), access.score(sentences)
    assert np.abs(bare - spaced).min() > 100 * TOL
    assert access.score_counted(sentences, delimiter="")[1] == [
        len(tok(s, add_special_tokens=False)["input_ids"]) for s in sentences
    ]
    mixed = access.score(sentences, delimiter=["", " "] * len(pairs))  # one per sentence
    np.testing.assert_allclose(mixed[0::2], bare[0::2], atol=TOL)
    np.testing.assert_allclose(mixed[1::2], spaced[1::2], atol=TOL)
    logps = [float(v.detach()) for v in access.logprobs(sentences, "")]
    np.testing.assert_allclose(logps, bare, atol=TOL)
    assert access.mean_margin(pairs, "") == pytest.approx(float(np.mean(bare[0::2] - bare[1::2])), abs=TOL)
    params = select_parameters(access.model)[:2]
    grad_bare = access.gradient_differential(pairs, params, delimiter="")
    assert np.abs(grad_bare - access.gradient_differential(pairs, params)).max() > 1e-6
    assert np.isfinite(grad_bare).all() and np.abs(grad_bare).max() > 0


def test_ftgd_tunes_after_the_source_delimiter(tiny_model: Path, blimp_dir: Path) -> None:
    from lingspace_harness_plugins.ftgd.tuner import FTGDSettings, MaskedTuner

    from lingspace_harness.gradients import select_parameters

    class Recording:
        """The model access, noting the delimiter of every call tuning makes."""

        def __init__(self, access: Any) -> None:
            self.inner, self.seen = access, []

        def logprobs(self, sentences: list[str], delimiter: str = " ") -> list[Any]:
            self.seen.append(("logprobs", delimiter))
            return self.inner.logprobs(sentences, delimiter)

        def mean_margin(self, pairs: list[MinimalPair], delimiter: str = " ") -> float:
            self.seen.append(("mean_margin", delimiter))
            return self.inner.mean_margin(pairs, delimiter)

    access = _access(tiny_model)
    recording = Recording(access)
    pairs = [MinimalPair(r["pairID"], r["sentence_good"], r["sentence_bad"]) for r in _rows(blimp_dir, 8)]
    tuner = MaskedTuner(access.model, select_parameters(access.model), None)
    try:
        tuner.tune(recording, pairs[:6], pairs[6:], FTGDSettings(steps=2, batch=2, eval_every=1), delimiter="")
    finally:
        tuner.restore()
    assert {n for n, _ in recording.seen} == {"logprobs", "mean_margin"}
    assert all(d == "" for _, d in recording.seen), recording.seen


def test_cka_probe_states_follow_the_task_delimiter(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """The tuned-states probe set (CKA's representations) reads each sentence after its task's
    delimiter, as scoring does: on a ``""`` task the states are those of the bare sentences."""
    import numpy as np
    from lingspace_harness_plugins.ftgd.probing import probe_delimiters, probe_sentences, probe_states

    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare

    task_file = _write_task(tmp_path, _rows(blimp_dir, 12), delimiter="")
    config = RunConfig(
        model=str(tiny_model),
        tasks=[str(task_file)],
        metrics=["cka"],
        output=tmp_path / "out",
        split_fractions=(0.5, 0.0, 0.5),
    )
    ctx = prepare(load_harness(), config)
    sentences = probe_sentences(ctx)
    assert probe_delimiters(ctx) == [""] * len(sentences)
    states = probe_states(ctx)
    np.testing.assert_allclose(states, ctx.access.hidden_states(sentences, delimiter=""), atol=1e-6)
    assert np.abs(states - ctx.access.hidden_states(sentences)).max() > 1e-3
