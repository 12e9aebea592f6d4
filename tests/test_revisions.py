"""Checkpoints are what they say: MODEL@REVISION, no revision for a local path, a hub model's
resolved commit in results.json and its fingerprint, and no trajectory of one model in compare."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lingspace_harness_plugins.hf_models import HFLoader

from lingspace_harness import ModelError, ModelOptions, RunConfig, UserError
from lingspace_harness.cli import main
from lingspace_harness.fingerprints import model_fingerprint
from lingspace_harness.models import split_revision
from lingspace_harness.tiny import build_tiny_model

HUB_ID = "org/tiny"
COMMITS = {"step1": "a" * 40, "step2": "b" * 40, None: "c" * 40}
RUN = ["--tasks", "blimp_anaphor_*,blimp_passive_*", "--limit", "8", "--metric", "gradsim"]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> str:
    capsys.readouterr()  # e.g. a fixture's progress bars
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err and fragment in err, err
    return err


def test_model_at_revision_is_split_in_one_place(tmp_path: Path) -> None:
    assert split_revision("EleutherAI/pythia-70m@step1000") == ("EleutherAI/pythia-70m", "step1000")
    assert split_revision("hf:org/m@refs/pr/1") == ("hf:org/m", "refs/pr/1")
    assert split_revision("org/m", "step1") == split_revision("org/m@step1", "step1") == ("org/m", "step1")
    with pytest.raises(UserError, match="names revision 'step1', --revision 'step2'"):
        split_revision("org/m@step1", "step2")
    for bad in ("org/m@", "@step1"):
        with pytest.raises(UserError, match="write MODEL@REVISION"):
            split_revision(bad)
    odd = tmp_path / "model@v1"  # an existing path wins, '@' and all
    odd.mkdir()
    assert split_revision(str(odd)) == (str(odd), None)
    for model, revision in ((str(odd), "main"), (f"{tmp_path}@step1", None), (f"hf:{odd}", "x")):
        with pytest.raises(UserError, match="is a local path, which has no revisions"):
            split_revision(model, revision)
    config = RunConfig(model="org/m@step3", tasks=["t"])
    assert (config.model, config.revision) == ("org/m", "step3")
    assert RunConfig.from_json(config.to_json()).revision == "step3"


def test_a_local_directory_with_a_revision_is_refused_before_anything_loads(
    capsys: pytest.CaptureFixture[str], tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    base = ["run", *RUN, "--data-dir", str(blimp_dir), "--output", str(out)]
    for model in (["--model", str(tiny_model), "--revision", "step1000"], ["--model", f"{tiny_model}@step1000"]):
        one_line_error(capsys, [*base, *model], "is a local path, which has no revisions")
    cka = ["--model", str(tiny_model), "--metric", "cka", "--cka-reference", f"{tiny_model}@step1"]
    one_line_error(capsys, [*base, *cka], "--cka-reference")
    one_line_error(capsys, ["export-hf", str(tiny_model), str(tmp_path / "x"), "--revision", "r"], "no revisions")
    sweep = ["sweep", "--models", f"org/m,{tiny_model}@step1", "--output", str(out), "--", *RUN]
    one_line_error(capsys, sweep, "sweep --models")
    assert not out.exists() and not (tmp_path / "x").exists()
    with pytest.raises(ModelError, match="does not apply to a local model directory"):  # the loader, called itself
        HFLoader().load(str(tiny_model), ModelOptions(revision="step1000"))


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> list[Any]:
    """``org/tiny`` on a hub that resolves step1, step2 and the main branch to three commits and
    serves the tiny model at each; returns the revisions from_pretrained was asked for."""
    import huggingface_hub
    from transformers import AutoModelForCausalLM, AutoTokenizer

    asked: list[Any] = []

    class Resolved(str):
        resolved: str

    def resolve(self: Any, repo: str, *, revision: str | None = None, **kw: Any) -> Resolved:
        assert repo == HUB_ID
        out = Resolved(revision or "main")
        out.resolved = COMMITS[revision]
        return out

    def serve(original: Any) -> Any:
        def from_pretrained(spec: Any, *args: Any, revision: str | None = None, **kw: Any) -> Any:
            if spec != HUB_ID:
                return original(spec, *args, revision=revision, **kw)
            asked.append(revision)
            return original(tiny_model, *args, **kw)

        return from_pretrained

    monkeypatch.setattr(huggingface_hub.HfApi, "resolve_revision", resolve)
    for auto in (AutoModelForCausalLM, AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", serve(auto.from_pretrained))
    return asked


def test_hub_revisions_record_their_commit_and_two_commits_two_fingerprints(
    capsys: pytest.CaptureFixture[str], fake_hub: list[Any], blimp_dir: Path, tmp_path: Path
) -> None:
    base = ["run", *RUN, "--data-dir", str(blimp_dir), "--permutations", "19"]
    models = {
        "a": ["--model", f"{HUB_ID}@step1"],
        "b": ["--model", HUB_ID, "--revision", "step2"],
        "a-seed1": ["--model", f"{HUB_ID}@step1", "--seed", "1"],
    }
    for name, model in models.items():
        assert main([*base, *model, "--output", str(tmp_path / name)]) == 0
    assert fake_hub == [COMMITS["step1"], COMMITS["step1"], COMMITS["step2"], COMMITS["step2"]] + [COMMITS["step1"]] * 2
    runs = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in models}
    for name, revision in (("a", "step1"), ("b", "step2")):
        model, config = runs[name]["model"], runs[name]["config"]
        assert (config["model"], config["revision"]) == (HUB_ID, revision)
        assert (model["name"], model["revision"], model["commit"]) == (HUB_ID, revision, COMMITS[revision])
        assert runs[name]["fingerprints"]["model"].endswith("@" + COMMITS[revision])
    a, b = (runs[n]["fingerprints"]["model"] for n in ("a", "b"))
    assert a != b and a.split("@")[0] == b.split("@")[0]  # the same weights, served at two commits
    assert runs["a-seed1"]["fingerprints"]["model"] == a

    cmp = ["--permutations", "19", "--bootstraps", "10"]
    ab = tmp_path / "ab"
    assert (
        main(["compare", str(tmp_path / "b"), str(tmp_path / "a"), "--order-by", "steps", "--output", str(ab), *cmp])
        == 0
    )
    labels = [r["label"] for r in json.loads((ab / "comparison.json").read_text())["runs"]]
    assert labels == ["step1", "step2"]  # two commits: a trajectory
    capsys.readouterr()
    same = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a-seed1"), *cmp]
    err = one_line_error(capsys, [*same, "--output", str(tmp_path / "c")], "hold runs of the same model")
    assert f"{tmp_path / 'a'} and {tmp_path / 'a-seed1'}" in err and "--allow-same-model" in err
    assert main([*same, "--output", str(tmp_path / "c"), "--allow-same-model"]) == 0
    comparison = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert [r["commit"] for r in comparison["runs"]] == [COMMITS["step1"], COMMITS["step2"], COMMITS["step1"]]


def test_local_fingerprints_are_unchanged_and_a_commit_extends_them(tmp_path: Path) -> None:
    from lingspace_harness import LoadedModel

    path = build_tiny_model(tmp_path / "m", "gpt2")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    loaded = LoadedModel(model, None, str(path), None, "float32", "cpu", "hf")
    local = model_fingerprint(loaded)
    assert local.startswith("params:") and "@" not in local and loaded.record()["commit"] is None
    assert model_fingerprint(replace(loaded, commit="d" * 40)) == f"{local}@{'d' * 40}"
    scorer = replace(loaded, model=None, scorer=lambda s: [0.0] * len(s))
    assert "@" not in model_fingerprint(scorer)
