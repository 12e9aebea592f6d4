"""Cross-checks of our minimal-pair scorer against lm-evaluation-harness itself.

Every reference number here is computed at test time by the installed lm-eval (its BLiMP
task template run through ``simple_evaluate``, or its ``HFLM.loglikelihood``), never copied.
Each comparison is paired with a check that a scorer getting lm-eval's conventions wrong
(no leading space, another prefix token) would be caught at the same tolerance.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from lingspace_harness import DataOptions, ModelOptions, load_harness
from lingspace_harness.cli import main
from lingspace_harness.config import cache_dir
from lingspace_harness.scoring import prefix_token_id, score_requests, sentence_requests
from lingspace_harness.tasks import load_task_data
from lingspace_harness.tiny import ARCHITECTURES

torch = pytest.importorskip("torch")
lm_eval = pytest.importorskip("lm_eval")

#: Absolute tolerance on summed log-probs (tiny fp32 models; sums reach a few hundred nats).
TOL = 1e-4
#: A convention error (dropped space, other prefix) must move scores by far more than TOL.
WRONG_MIN = 100 * TOL
#: Three paradigms with short sentences (the tiny models have 128 positions).
PARADIGMS = ("adjunct_island", "anaphor_gender_agreement", "regular_plural_subject_verb_agreement_1")


@pytest.fixture(autouse=True)
def _two_threads(torch_threads) -> None:
    torch_threads(2)


# ----------------------------------------------------------------------------- helpers


def _lm_eval_registry() -> None:
    # lm-eval 0.4.13 fills its metric, filter and model registries when these modules are
    # imported; they must be imported before a TaskManager is built, or built-ins go missing.
    import lm_eval.api.metrics  # noqa: F401
    import lm_eval.filters  # noqa: F401
    import lm_eval.models  # noqa: F401


def _hflm(path: Path, **kwargs: Any) -> Any:
    _lm_eval_registry()
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(path), batch_size=16, device="cpu", dtype="float32", **kwargs)


def _lm_eval_logps(lm: Any, sentences: Sequence[str]) -> list[float]:
    """lm-eval's BLiMP request for each sentence: empty context, continuation ' ' + s."""
    from lingspace_harness_plugins.lm_eval_compat import loglikelihood_requests

    out = lm.loglikelihood(loglikelihood_requests([("", " " + s) for s in sentences]), disable_tqdm=True)
    assert len(out) == len(sentences)
    return [float(ll) for ll, _greedy in out]


#: Our scorer's code paths: one prefix tree per pass, several small trees as padded batch
#: rows (``tree_nodes``), and plain padded batches.
VARIANTS = {
    "trie": {"method": "trie"},
    "trie-rows": {"method": "trie", "tree_nodes": 64},
    "padded": {"method": "padded"},
}


def _ours(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    variant: str,
    override: str | int | None = None,
    batch_size: int = 16,
) -> list[float]:
    requests = sentence_requests(tokenizer, sentences, prefix_token_id(tokenizer, override))
    scores = score_requests(model, requests, batch_size=batch_size, **VARIANTS[variant])
    return [float(v) for v in scores]


def _deltas(a: Sequence[float], b: Sequence[float]) -> list[float]:
    assert len(a) == len(b)
    return [abs(x - y) for x, y in zip(a, b)]


def _load_hf(path: Path) -> tuple[Any, Any]:
    from lingspace_harness_plugins.hf_models import HFLoader

    loaded = HFLoader().load(str(path), ModelOptions(dtype="float32", device="cpu"))
    return loaded.model, loaded.tokenizer


def _blimp_sentences(blimp_dir: Path, n_pairs: int = 100) -> list[str]:
    """``n_pairs`` real pairs taken round-robin over all paradigms: good, bad, good, bad, ..."""
    files = sorted(blimp_dir.glob("*.jsonl"))
    assert len(files) == 67, f"expected the 67 BLiMP paradigms in {blimp_dir}"
    rows = {f: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()[:3]] for f in files}
    sentences: list[str] = []
    for k in range(3):
        for f in files:
            if len(sentences) == 2 * n_pairs:
                return sentences
            sentences += [rows[f][k]["sentence_good"], rows[f][k]["sentence_bad"]]
    return sentences


def _assert_close(
    name: str, ours: Sequence[float], ref: Sequence[float], sentences: Sequence[str], tol: float = TOL
) -> None:
    d = _deltas(ours, ref)
    worst = max(range(len(d)), key=d.__getitem__)
    assert d[worst] <= tol, (
        f"{name}: |ours - lm-eval| = {d[worst]:.3g} > {tol:g} for "
        f"{sentences[worst]!r} (ours {ours[worst]!r}, lm-eval {ref[worst]!r})"
    )


def _assert_would_catch(name: str, wrong: Sequence[float], ref: Sequence[float]) -> None:
    """The tolerance separates a wrong convention from lm-eval's for (nearly) every sentence."""
    d = _deltas(wrong, ref)
    caught = sum(x > WRONG_MIN for x in d)
    assert caught >= 0.95 * len(d), f"{name}: only {caught}/{len(d)} sentences would expose it"


# ----------------------------------------- 1. lm-eval's own BLiMP task template, end to end


def _write_lm_eval_tasks(tmp: Path, pairs: list[dict[str, Any]]) -> list[str]:
    """One task YAML per paradigm, including lm-eval's installed BLiMP template, on local data."""
    template = Path(lm_eval.__file__).resolve().parent / "tasks" / "blimp" / "_template_yaml"
    assert template.is_file(), f"lm-eval's BLiMP template is missing: {template}"
    settings = yaml.safe_load(template.read_text(encoding="utf-8"))
    # The premise of the comparison: lm-eval scores each sentence with an empty context.
    assert settings["output_type"] == "multiple_choice"
    assert settings["doc_to_text"] == ""
    assert settings["doc_to_choice"] == "{{[sentence_good, sentence_bad]}}"
    assert settings["doc_to_target"] == 0
    split = settings.get("test_split") or settings.get("validation_split")
    assert split == "train", settings

    include = tmp / "tasks"
    include.mkdir()
    names = []
    for uid in PARADIGMS:
        data = (tmp / f"{uid}.jsonl").resolve()  # lm-eval resolves data_files against the CWD
        rows = [p for p in pairs if p["task"] == f"blimp_{uid}"]
        assert rows, uid
        data.write_text(
            "".join(
                json.dumps(
                    {"sentence_good": p["sentence_good"], "sentence_bad": p["sentence_bad"], "pairID": p["pairID"]}
                )
                + "\n"
                for p in rows
            ),
            encoding="utf-8",
        )
        name = f"lsagree_blimp_{uid}"
        spec = {
            "include": str(template),
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {split: str(data)}, "cache_dir": str((tmp / "hf_datasets").resolve())},
        }
        (include / f"{name}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
        names.append(name)
    return names


def _pairs_file(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lm_eval_blimp_task_agrees(arch: str, tiny_model_factory, blimp_dir: Path, tmp_path: Path) -> None:
    """lm-eval's BLiMP template, run by lm-eval and by us (the ``lm_eval`` task source) on the
    same pairs, agrees sentence by sentence; with our registered BLiMP too where the installed
    lm-eval keeps BLiMP's leading space (0.4; 0.5 scores each sentence without it)."""
    model_dir = tiny_model_factory(arch)
    rc = main(
        [
            "run",
            "--model",
            str(model_dir),
            "--tasks",
            ",".join(f"blimp_{u}" for u in PARADIGMS),
            "--data-dir",
            str(blimp_dir),
            "--limit",
            "10",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 0
    registered = {(p["task"].removeprefix("blimp_"), p["pairID"]): p for p in _pairs_file(tmp_path / "run")}
    assert len(registered) == 10 * len(PARADIGMS)

    _lm_eval_registry()
    from lm_eval.tasks import TaskManager

    names = _write_lm_eval_tasks(tmp_path, list(registered.values()))
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
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
    assert (
        main(
            [
                "run",
                "--model",
                str(model_dir),
                "--tasks",
                f"{tmp_path / 'tasks'}/",
                "--split-fractions",
                "0,0,1",
                "--output",
                str(tmp_path / "same-yaml"),
            ]
        )
        == 0
    )
    ours = json.loads((tmp_path / "same-yaml" / "results.json").read_text(encoding="utf-8"))["tasks"]
    pairs = _pairs_file(tmp_path / "same-yaml")

    for uid, name in zip(PARADIGMS, names):
        mine = {p["pairID"]: p for p in pairs if p["task"] == name}
        samples = evaluated["samples"][name]
        assert ours[name]["n_test"] == len(samples) == len(mine) == 10
        assert {s["doc"]["pairID"] for s in samples} == set(mine)
        delimiter = ours[name]["delimiter"]  # what the installed lm-eval puts before a choice

        # Per sentence: choice 0 is the good sentence, choice 1 the bad one; resps hold one
        # [(loglikelihood, is_greedy)] per request in lm-eval 0.4 and 0.5 alike.
        ref, mine_logps, theirs_registered, sentences = [], [], [], []
        for sample in samples:
            p, q = mine[sample["doc"]["pairID"]], registered[(uid, sample["doc"]["pairID"])]
            assert [tuple(a) for a in sample["arguments"]] == [
                ("", delimiter + p["sentence_good"]),
                ("", delimiter + p["sentence_bad"]),
            ]
            assert (p["sentence_good"], p["sentence_bad"]) == (q["sentence_good"], q["sentence_bad"])
            ref += [float(r[0][0]) for r in sample["resps"]]
            mine_logps += [p["logp_good"], p["logp_bad"]]
            theirs_registered += [q["logp_good"], q["logp_bad"]]
            sentences += [p["sentence_good"], p["sentence_bad"]]
            # Same decision on every pair (lm-eval: argmax of the two), hence the same accuracy.
            assert sample["acc"] == float(p["logp_good"] > p["logp_bad"]), p["pairID"]
        _assert_close(f"{arch}/{name}", mine_logps, ref, sentences)
        assert evaluated["results"][name]["acc,none"] == pytest.approx(ours[name]["accuracy"], abs=1e-12)
        if delimiter == " ":  # lm-eval 0.4: its BLiMP is ours
            _assert_close(f"{arch}/blimp_{uid}", theirs_registered, ref, sentences)
        else:  # lm-eval 0.5: without BLiMP's leading space, every sentence scores otherwise
            assert delimiter == ""
            _assert_would_catch(f"{arch}/blimp_{uid} against lm-eval 0.5", theirs_registered, ref)


# ------------------------------------------------- 2. HFLM.loglikelihood vs score_requests


@pytest.fixture(scope="module")
def blimp_sentences(blimp_dir: Path) -> list[str]:
    return _blimp_sentences(blimp_dir, n_pairs=100)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_hflm_loglikelihood_agrees(arch: str, tiny_model_factory, blimp_sentences: list[str]) -> None:
    model_dir = tiny_model_factory(arch)
    model, tokenizer = _load_hf(model_dir)
    ref = _lm_eval_logps(_hflm(model_dir), blimp_sentences)
    for method in VARIANTS:
        ours = _ours(model, tokenizer, blimp_sentences, method)
        _assert_close(f"{arch}/{method}", ours, ref, blimp_sentences)

    # The tolerance has teeth: dropping the leading space would fail it.
    prefix = prefix_token_id(tokenizer)
    no_space = [([prefix], tokenizer(s, add_special_tokens=False)["input_ids"]) for s in blimp_sentences]
    wrong = [float(v) for v in score_requests(model, no_space, batch_size=16, method="padded")]
    _assert_would_catch(f"{arch}: no leading space", wrong, ref)


@pytest.mark.parametrize("override", ["Ġ", "42"], ids=["token", "id"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_hflm_prefix_token_override_agrees(
    arch: str, override: str, tiny_model_factory, blimp_sentences: list[str]
) -> None:
    """``--prefix-token`` as a token or an id, against HFLM's ``prefix_token_id=``.

    With the tiny tokenizer every ``' ' + sentence`` starts with the token ``Ġ``, so that
    override also exercises lm-eval's rule for a continuation that starts with the prefix
    (it becomes the context instead of being scored).
    """
    model_dir = tiny_model_factory(arch)
    model, tokenizer = _load_hf(model_dir)
    sentences = blimp_sentences[:100]
    expected_id = int(override) if override.isdigit() else tokenizer.convert_tokens_to_ids(override)
    assert expected_id not in (None, tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert prefix_token_id(tokenizer, override) == expected_id
    lm = _hflm(model_dir, prefix_token_id=expected_id)
    assert lm.prefix_token_id == expected_id
    ref = _lm_eval_logps(lm, sentences)
    for method in VARIANTS:
        ours = _ours(model, tokenizer, sentences, method, override=override)
        _assert_close(f"{arch}/{method}/prefix {override!r}", ours, ref, sentences)

    # Ignoring the override (default prefix), or always prepending it, would fail.
    _assert_would_catch(f"{arch}: override ignored", _ours(model, tokenizer, sentences, "padded"), ref)
    if override == "Ġ":
        naive = [([expected_id], tokenizer(" " + s, add_special_tokens=False)["input_ids"]) for s in sentences]
        wrong = [float(v) for v in score_requests(model, naive, batch_size=16, method="padded")]
        _assert_would_catch(f"{arch}: prefix always prepended", wrong, ref)


#: The byte-level symbol of byte 0: in the tiny vocabulary, never in BLiMP text.
UNUSED_TOKEN = "\u0100"


@pytest.mark.parametrize("bos", ["distinct", "none"])
def test_hflm_default_prefix_agrees(bos: str, tiny_model_factory, blimp_sentences: list[str], tmp_path: Path) -> None:
    """The default prefix is BOS, else EOS (the tiny tokenizer's BOS and EOS coincide)."""
    import shutil

    from transformers import AutoTokenizer

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_factory("gpt2"), model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = len(tokenizer)
    assert UNUSED_TOKEN in tokenizer.get_vocab()
    tokenizer.bos_token = UNUSED_TOKEN if bos == "distinct" else None
    tokenizer.save_pretrained(model_dir)
    model, tokenizer = _load_hf(model_dir)
    assert len(tokenizer) == vocab
    expected = tokenizer.convert_tokens_to_ids(UNUSED_TOKEN) if bos == "distinct" else tokenizer.eos_token_id
    assert (tokenizer.bos_token_id is None) == (bos == "none")
    assert expected != (tokenizer.eos_token_id if bos == "distinct" else None)

    sentences = blimp_sentences[:100]
    lm = _hflm(model_dir)
    assert lm.prefix_token_id == expected == prefix_token_id(tokenizer)
    ref = _lm_eval_logps(lm, sentences)
    for method in VARIANTS:
        _assert_close(f"{bos} BOS/{method}", _ours(model, tokenizer, sentences, method), ref, sentences)
    if bos == "distinct":  # EOS where lm-eval uses BOS would fail
        eos = _ours(model, tokenizer, sentences, "padded", override=tokenizer.eos_token_id)
        _assert_would_catch("EOS instead of BOS", eos, ref)


# ------------------------------------------------------------- 3. the real SmolLM2-135M


@pytest.mark.slow
def test_hflm_agrees_on_smollm2(smollm2_gguf: Path, blimp_dir: Path) -> None:
    from lingspace_harness_plugins.hf_models import GGUFLoader

    root = cache_dir()
    loaded = GGUFLoader().load(str(smollm2_gguf), ModelOptions(dtype="float32", cache_dir=root))
    assert loaded.revision and loaded.revision.startswith("sha256:")
    cached = root / "gguf" / loaded.revision.removeprefix("sha256:")[:16]
    assert (cached / "config.json").is_file(), cached

    # The test split as a run with --limit 5 picks it: 67 paradigms x 5 pairs.
    harness = load_harness()
    tasks = harness.tasks.select(["blimp_*"])
    assert len(tasks) == 67
    pairs = [(t.name, p) for t in tasks for p in load_task_data(t, DataOptions(data_dir=blimp_dir), limit=5).test]
    assert len(pairs) == 67 * 5
    sentences = [s for _, p in pairs for s in (p.good, p.bad)]

    lm = _hflm(cached)
    ours_prefix, lm_prefix = prefix_token_id(loaded.tokenizer), lm.prefix_token_id
    assert ours_prefix == lm_prefix, f"prefix token: ours {ours_prefix}, lm-eval {lm_prefix}"
    ref = _lm_eval_logps(lm, sentences)
    del lm

    def accuracy(logps: Sequence[float]) -> dict[str, float]:
        wins: dict[str, list[bool]] = {}
        for k, (task, _) in enumerate(pairs):
            wins.setdefault(task, []).append(logps[2 * k] > logps[2 * k + 1])
        return {t: sum(w) / len(w) for t, w in wins.items()}

    ref_acc = accuracy(ref)
    for method in VARIANTS:
        ours = _ours(loaded.model, loaded.tokenizer, sentences, method, batch_size=64)
        d = _deltas(ours, ref)
        print(
            f"\nSmolLM2 {method}: max |dlogp| {max(d):.3g}, median {statistics.median(d):.3g} over {len(d)} sentences"
        )
        # fp32 kernels of different shapes differ by up to ~1e-3 on this model (lm-eval's own
        # values are ~3e-3 from float64), so 1e-4 holds only typically, not for every sentence.
        _assert_close(f"SmolLM2/{method}", ours, ref, sentences, tol=2e-3)
        assert statistics.median(d) <= 1e-4, f"{method}: median |dlogp| {statistics.median(d):.3g}"
        ours_acc = accuracy(ours)
        assert ours_acc == ref_acc, {t: (a, ref_acc[t]) for t, a in ours_acc.items() if a != ref_acc[t]}
