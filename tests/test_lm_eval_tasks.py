"""lm-eval tasks as phenomena (the ``lm_eval`` task source) and the task-source hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from lingspace_harness_plugins.blimp_yaml import write_local_yaml, yaml_path

from lingspace_harness import DataOptions, Task, hookimpl, load_harness
from lingspace_harness.cli import main
from lingspace_harness.pairs import read_pairs_jsonl
from lingspace_harness.tasks import select_tasks

torch = pytest.importorskip("torch")
lm_eval = pytest.importorskip("lm_eval")

ANAPHOR = ["anaphor_gender_agreement", "anaphor_number_agreement"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, torch_threads) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    torch_threads(2)


@pytest.fixture(scope="module")
def local_yaml(blimp_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm_eval_yaml")
    assert write_local_yaml(blimp_dir, out) == 67
    return out


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_lm_eval_tasks_agree_with_lm_eval(tiny_model: Path, local_yaml: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ours"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "lm_eval:lingspace_blimp_anaphor_*",
                "--include-path",
                str(local_yaml),
                "--split-fractions",
                "0,0,1",
                "--metric",
                "accuracy",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    ours = _results(out)["tasks"]
    names = [f"lingspace_blimp_{p}" for p in ANAPHOR]
    assert sorted(ours) == names
    for name in names:  # labels from the YAML's metadata; every pair, good first
        assert (ours[name]["phenomenon"], ours[name]["field"], ours[name]["group"]) == (
            "anaphor_agreement",
            "morphology",
            "anaphor_agreement",
        )
        assert ours[name]["n_test"] == 1000
        assert ours[name]["source"] == f"lm_eval:{local_yaml / (name + '.yaml')}"
        # Our YAMLs write BLiMP's leading space into the choices (lm-eval 0.4 and 0.5 both score it so),
        # and a pair keeps its choices as lm-eval scores them, after nothing else.
        assert ours[name]["delimiter"] == ""
    pairs = {
        (r["sentence_good"], r["sentence_bad"]) for r in map(json.loads, (out / "pairs.jsonl").read_text().splitlines())
    }
    data = {(" " + p.good, " " + p.bad) for uid in ANAPHOR for p in read_pairs_jsonl(blimp_dir / f"{uid}.jsonl")}
    assert pairs == data

    from lm_eval.tasks import TaskManager

    evaluated = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model},dtype=float32",
        tasks=names,
        task_manager=TaskManager(include_path=str(local_yaml), include_defaults=False),
        batch_size=32,
        device="cpu",
    )
    for name in names:
        theirs = evaluated["results"][name]
        print(
            f"\n{name}: lm-eval acc {theirs['acc,none']}, ours {ours[name]['accuracy']}; "
            f"margin {theirs['margin,none']:.6f} vs {ours[name]['margin']:.6f}"
        )
        assert theirs["acc,none"] == ours[name]["accuracy"]
        assert theirs["margin,none"] == pytest.approx(ours[name]["margin"], abs=1e-5)


def test_an_lm_eval_task_builds_a_gradsim_space_like_the_same_pairs_registered(
    lingspace_plugin, tiny_model: Path, local_yaml: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    """Same names, same pairs in the same order: the same split, scores and differentials."""

    class Registered:
        @hookimpl
        def lingspace_register_phenomena(self, register):
            for uid in ANAPHOR:
                register(
                    Task(
                        name=f"lingspace_blimp_{uid}",
                        phenomenon="x",
                        field="y",
                        source="test",
                        load=lambda options, uid=uid: read_pairs_jsonl(blimp_dir / f"{uid}.jsonl"),
                    )
                )

    lingspace_plugin(Registered(), "registered")
    common = ["--model", str(tiny_model), "--metric", "accuracy,gradsim", "--limit", "10", "--analysis", "none"]
    assert (
        main(
            [
                "run",
                *common,
                "--tasks",
                "lm_eval:lingspace_blimp_anaphor_*",
                "--include-path",
                str(local_yaml),
                "--output",
                str(tmp_path / "lm_eval"),
            ]
        )
        == 0
    )
    assert main(["run", *common, "--tasks", "lingspace_blimp_anaphor_*", "--output", str(tmp_path / "registered")]) == 0
    ours, reference = _results(tmp_path / "lm_eval"), _results(tmp_path / "registered")
    space = ours["spaces"]["gradsim"]
    assert space["tasks"] == [f"lingspace_blimp_{u}" for u in ANAPHOR]
    assert space["matrix"][0][0] == pytest.approx(1) and -1 < space["matrix"][0][1] < 1
    assert np.allclose(space["matrix"], reference["spaces"]["gradsim"]["matrix"], atol=1e-6, rtol=0)
    for name, fields in ours["tasks"].items():
        assert fields["n_train"] == 10 and fields["phenomenon"] == "anaphor_agreement"
        assert (fields["accuracy"], fields["margin"]) == (
            reference["tasks"][name]["accuracy"],
            pytest.approx(reference["tasks"][name]["margin"], abs=1e-6),
        )

    # Both at once: two tasks of one name is an error, not a silent pick.
    assert (
        main(
            [
                "run",
                *common,
                "--tasks",
                "lingspace_blimp_anaphor_gender_agreement,lm_eval:lingspace_blimp_anaphor_*",
                "--include-path",
                str(local_yaml),
                "--output",
                str(tmp_path / "both"),
            ]
        )
        == 2
    )


def test_yaml_paths_groups_and_no_default_index(
    local_yaml: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lingspace_harness_plugins.lm_eval_compat import Catalog

    defaults = []
    original = Catalog.__init__

    def spy(self, paths, defaults_wanted):
        defaults.append(defaults_wanted)
        original(self, paths, defaults_wanted)

    monkeypatch.setattr(Catalog, "__init__", spy)

    def listed(*args: str) -> list[dict]:
        assert main(["tasks", *args, "--json"]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    leaf = local_yaml / "lingspace_blimp_passive_1.yaml"
    assert [t["name"] for t in listed(str(leaf))] == ["lingspace_blimp_passive_1"]
    assert listed(f"lm_eval:{leaf}")[0]["phenomenon"] == "argument_structure"
    for spec in [str(local_yaml) + "/", str(local_yaml / "_lingspace_blimp.yaml"), "lm_eval:lingspace_blimp"]:
        tasks = listed(spec, "--include-path", str(local_yaml))
        assert len(tasks) == 67 and len({t["phenomenon"] for t in tasks}) == 13
    assert defaults and not any(defaults)  # every name was found in the include paths


def _write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def own_tasks(tmp_path: Path) -> Path:
    """A group of two tasks without metadata (gold second; gold as text) and a task of its own."""
    data = tmp_path / "rows.jsonl"
    rows = [{"a": f"The cat sat {i}.", "b": f"The cats sat {i}.", "c": f"Cat the sat {i}."} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(data)}},
        "output_type": "multiple_choice",
        "test_split": "train",
        "doc_to_text": "",
        "metric_list": [{"metric": "acc"}],
    }
    root = tmp_path / "tasks"
    root.mkdir()
    _write(root / "second.yaml", {**base, "task": "own_second", "doc_to_choice": "{{[c, b]}}", "doc_to_target": 1})
    _write(root / "text.yaml", {**base, "task": "own_text", "doc_to_choice": "{{[c, b]}}", "doc_to_target": "{{b}}"})
    _write(root / "alone.yaml", {**base, "task": "own_alone", "doc_to_choice": "{{[b, c]}}", "doc_to_target": 0})
    _write(root / "group.yaml", {"group": "own_group", "task": ["own_second", "own_text"]})
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "three.yaml", {**base, "task": "own_three", "doc_to_choice": "{{[a, b, c]}}", "doc_to_target": 0})
    _write(
        bad / "context.yaml",
        {**base, "task": "own_context", "doc_to_text": "{{a}}", "doc_to_choice": "{{[b, c]}}", "doc_to_target": 0},
    )
    _write(
        bad / "generate.yaml",
        {**base, "task": "own_generate", "output_type": "generate_until", "doc_to_target": "{{b}}"},
    )
    return tmp_path


def test_own_yaml_labels_and_gold_choice(
    own_tasks: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = own_tasks / "tasks"
    assert main(["tasks", "lm_eval:own_*", "--include-path", str(root), "--json"]) == 0
    labels = {
        t["name"]: (t["phenomenon"], t["field"], t["group"])
        for t in map(json.loads, capsys.readouterr().out.splitlines())
    }
    assert labels == {
        "own_second": ("own_group", "unknown", "own_group"),
        "own_text": ("own_group", "unknown", "own_group"),
        "own_alone": ("own_alone", "unknown", None),
    }
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                str(root) + "/",
                "--split-fractions",
                "0,0,1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 18
    assert all(p["sentence_good"].startswith("The cats") and p["sentence_bad"].startswith("Cat the") for p in pairs)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("three", "lm-eval task 'own_three' is not a two-choice task: document 1 has 3 choices"),
        ("context", "lm-eval task 'own_context' puts a context before its choices"),
        ("generate", "lm-eval task 'own_generate' is a generate_until task"),
    ],
)
def test_unsuitable_lm_eval_task_is_one_line(
    name: str, expected: str, own_tasks: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                str(own_tasks / "bad" / f"{name}.yaml"),
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "out" / "results.json").exists()


def test_unknown_lm_eval_name_is_one_line_with_a_suggestion(
    tiny_model: Path, local_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "lm_eval:lingspace_blimp_anaphor_gendr_agreement",
                "--include-path",
                str(local_yaml),
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )
    line = _one_error_line(capsys)
    assert "no lm-eval task, group or tag matches 'lingspace_blimp_anaphor_gendr_agreement'" in line
    assert "lm-eval's own tasks" in line and "did you mean 'lingspace_blimp_anaphor_gender_agreement'" in line


class PairFiles:
    """A third-party task source: ``pairs:UID`` (or a ``*.pairs`` path) is a BLiMP file as a task."""

    name = "pairs"
    description = "BLiMP files as tasks"

    def __init__(self, root: Path) -> None:
        self.root, self.calls = root, []

    def claims(self, spec: str) -> bool:
        return spec.endswith(".pairs")

    def resolve(self, specs: list[str], options: DataOptions) -> list[Task]:
        self.calls.append(list(specs))
        uids = [Path(s).stem for s in specs]
        return [
            Task(
                name=f"pairs_{u}",
                phenomenon=u,
                field="test",
                source="pairs",
                load=lambda options, u=u: read_pairs_jsonl(self.root / f"{u}.jsonl"),
            )
            for u in uids
        ]


def test_a_third_party_task_source(lingspace_plugin, blimp_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    source = PairFiles(blimp_dir)

    class Plugin:
        @hookimpl
        def lingspace_register_task_sources(self, register):
            register(source)

    lingspace_plugin(Plugin(), "pair-files")
    harness = load_harness()
    assert harness.task_sources.owner("pairs") == "pair-files"
    picked = select_tasks(
        harness.tasks, harness.task_sources, ["pairs:passive_1", "blimp_passive_2", "some/dir/npi_present_1.pairs"]
    )
    assert [t.name for t in picked] == ["pairs_passive_1", "pairs_npi_present_1", "blimp_passive_2"]
    assert source.calls == [["passive_1", "some/dir/npi_present_1.pairs"]]  # all of a source's specs at once
    out = tmp_path / "out"
    assert (
        main(
            ["run", "--model", str(tiny_model), "--tasks", "pairs:adjunct_island", "--limit", "5", "--output", str(out)]
        )
        == 0
    )
    assert _results(out)["tasks"]["pairs_adjunct_island"]["phenomenon"] == "adjunct_island"


def test_lm_eval_tasks_entry_point_names_the_yaml_package() -> None:
    """lm-eval PR #4015: an ``lm_eval.tasks`` entry point names a package whose directory lm-eval scans."""
    import importlib.metadata as md
    import importlib.util

    from lingspace_harness_plugins.lm_eval_compat import Catalog

    ours = [ep for ep in md.entry_points(group="lm_eval.tasks") if ep.name == "lingspace_harness"]
    assert [ep.value for ep in ours] == ["lingspace_harness_yaml"]
    directory = Path(importlib.util.find_spec(ours[0].value).submodule_search_locations[0])
    assert directory == yaml_path()
    index = Catalog([directory], defaults=False)
    assert "lingspace_blimp" in index.groups and sum(n.startswith("lingspace_blimp_") for n in index.tasks) == 67
