"""How a plugin author tests a lingspace-harness plugin.

``lingspace_plugin`` and ``tiny_model`` are fixtures of the pytest plugin that ships
with lingspace-harness; they need no conftest.

- ``lingspace_plugin(obj, name=...)`` registers a plugin object for one test only.
- ``tiny_model`` is the path of a tiny random GPT-2 built offline, so a whole
  ``lingspace-harness run`` takes seconds. Its accuracies are noise: test the
  plumbing (tasks found, pairs loaded, results written), not the numbers.
"""

from __future__ import annotations

import importlib.metadata
import json

import lingspace_example_plugin as plugin
import pytest

from lingspace_harness.cli import main
from lingspace_harness.tasks import split_pairs


@pytest.fixture
def example(lingspace_plugin):
    """The plugin, registered in-process under its entry-point name for one test.

    If the package is also installed, the harness loads it from the entry point as well
    and skips this second copy with a warning ("the name is taken").
    """
    return lingspace_plugin(plugin, name="example")


def installed() -> bool:
    try:
        importlib.metadata.distribution("lingspace-example-plugin")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("task", sorted(plugin.TASKS))
def test_packaged_pairs_are_valid(task):
    pairs = plugin.load_pairs(task)
    assert len(pairs) >= 20
    assert len({p.pair_id for p in pairs}) == len(pairs)
    assert len({p.good for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.good != p.bad
        assert len(p.good.split()) == len(p.bad.split())  # one word swapped, nothing added


def test_tasks_command_lists_the_tasks(example, capsys):
    assert main(["tasks", "example_*"]) == 0
    header, *rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert header == ["name", "phenomenon", "field", "source"]
    listed = {name: (phenomenon, field) for name, phenomenon, field, _source in rows}
    assert listed == {name: (phenomenon, field) for name, (phenomenon, field, _) in plugin.TASKS.items()}


def test_plugins_command_shows_what_it_registered(example, capsys):
    assert main(["plugins"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["example"]["hooks"] == ["lingspace_register_phenomena"]
    assert plugins["example"]["registered"] == {"task": list(plugin.TASKS)}


def test_run_with_tiny_model(example, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--model", str(tiny_model), "--tasks", "example_*", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["tasks"]) == set(plugin.TASKS)
    for name, task in results["tasks"].items():
        test_split = split_pairs(plugin.load_pairs(name), name, seed=0)[2]
        assert task["n_test"] == len(test_split)
        assert 0.0 <= task["accuracy"] <= 1.0
        assert task["phenomenon"] == plugin.TASKS[name][0]


@pytest.mark.skipif(not installed(), reason="needs `pip install` of this package")
def test_entry_point_is_found_when_installed(capsys):
    """No fixture here: the harness finds the plugin through pyproject's entry point."""
    assert main(["plugins", "--strict"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["example"]["distribution"] == "lingspace-example-plugin"
    assert plugins["example"]["registered"] == {"task": list(plugin.TASKS)}
