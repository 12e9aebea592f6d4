"""The third-party plugin example in examples/lingspace-example-plugin, tested in-process.

Its module is imported from the checkout and registered for one test with the
``lingspace_plugin`` fixture. These tests see installed third-party plugins, as a user
would: CI also pip-installs the example (that copy is hidden below) and runs the CLI
against the installed entry point.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from lingspace_harness import load_harness
from lingspace_harness.cli import main
from lingspace_harness.tasks import split_pairs

pytestmark = pytest.mark.third_party_plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SRC = ROOT / "examples" / "lingspace-example-plugin" / "src"
TASKS = {
    "example_subject_aux_agreement": ("subject_verb_agreement", "morphology"),
    "example_reflexive_number": ("anaphor_agreement", "morphology"),
}


@pytest.fixture
def example_module(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    return importlib.import_module("lingspace_example_plugin")


@pytest.fixture
def example(example_module, lingspace_plugin, monkeypatch):
    # Should the package also be pip-installed in this environment, hide that copy (by its
    # distribution name, which only entry points have) so the checkout's module is tested.
    monkeypatch.setenv("LINGSPACE_DISABLE_PLUGINS", "lingspace-example-plugin")
    return lingspace_plugin(example_module, name="example")


def test_tasks_are_listed_with_phenomenon_and_field(example, capsys):
    assert main(["tasks", "example_*"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == "name\tphenomenon\tfield\tsource"
    rows = [line.split("\t") for line in lines]
    assert {name: (phenomenon, field) for name, phenomenon, field, _ in rows} == TASKS
    assert {source for *_, source in rows} == {"lingspace-example-plugin"}


def test_tasks_json_and_owner(example, capsys):
    assert main(["tasks", "example_*", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: (r["phenomenon"], r["field"]) for r in rows} == TASKS
    assert {r["group"] for r in rows} == {"example"}
    harness = load_harness(strict=True)
    assert {harness.tasks.owner(name) for name in TASKS} == {"example"}
    assert harness.plugins["example"].registered == {"task": list(TASKS)}


def test_packaged_data_loads(example_module):
    for name in TASKS:
        pairs = example_module.load_pairs(name)
        assert len(pairs) == 30
        assert all(p.good != p.bad for p in pairs)


def test_run_with_tiny_model(example, example_module, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--model", str(tiny_model), "--tasks", "example_*", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["tasks"]) == set(TASKS)
    for name, task in results["tasks"].items():
        n_test = len(split_pairs(example_module.load_pairs(name), name, seed=0)[2])
        assert task["n_test"] == n_test > 0
        assert 0.0 <= task["accuracy"] <= 1.0
        assert (task["phenomenon"], task["field"]) == TASKS[name]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == sum(t["n_test"] for t in results["tasks"].values())


def test_disable_env_var_hides_the_plugin(example, monkeypatch, capsys):
    assert main(["tasks", "example_*"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("LINGSPACE_DISABLE_PLUGINS", "example")
    assert main(["tasks", "example_*"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no task matches 'example_*'" in captured.err
    assert main(["plugins"]) == 0
    assert "example" not in {p["name"] for p in json.loads(capsys.readouterr().out)}
