"""Plugin loading: entry points, allow/deny lists, broken plugins, duplicates, every hook."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest

from lingspace_harness import (
    MetricResult,
    MinimalPair,
    PluginError,
    Space,
    Task,
    UnknownNameError,
    hookimpl,
    load_harness,
)
from lingspace_harness.cli import main
from lingspace_harness.plugins import HOOKS

BUILTINS = {
    "blimp",
    "blimp_yaml",
    "hf_models",
    "accuracy",
    "markdown",
    "strategies",
    "gradsim",
    "signed_mask",
    "ftgd",
    "cka",
    "lm_eval_results",
    "hypotheses",
    "analysis",
    "clustering",
    "report",
    "compare",
    "executors",
    "lm_eval_tasks",
    "lm_eval_models",
    "export_hf",
}


def make_distribution(root: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    """A real installed distribution on sys.path: a module plus its .dist-info with an entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lingspace_harness]\n{ep_name or module} = {module}\n")


GOOD_PLUGIN = """
from lingspace_harness import Task, MinimalPair, hookimpl

@hookimpl
def lingspace_register_phenomena(register):
    register(Task(name="thirdparty_task", phenomenon="p", field="f", source="test",
                  load=lambda options: [MinimalPair("1", "A cat runs.", "A cat run.")]))
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if name.startswith("lsh_test_"):
            del sys.modules[name]


def test_builtins_are_entry_points_of_the_distribution() -> None:
    harness = load_harness()
    builtins = {n for n, p in harness.plugins.items() if p.builtin}
    assert builtins == BUILTINS
    assert all(harness.plugins[n].distribution == "lingspace-harness" for n in builtins)
    assert len(harness.tasks.select(["blimp_*"])) == 67
    assert {"hf", "gguf"} <= set(harness.model_loaders.names())


def test_plugins_command_prints_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["plugins"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert BUILTINS <= set(listed)
    assert listed["accuracy"]["hooks"] == ["lingspace_register_metrics"]
    assert listed["accuracy"]["registered"] == {"metric": ["accuracy"]}
    assert listed["hf_models"]["version"]


@pytest.mark.third_party_plugins
def test_third_party_entry_point_and_allow_list(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(site, "lsh-test-good", "lsh_test_good", GOOD_PLUGIN)
    harness = load_harness()
    assert "thirdparty_task" in harness.tasks
    assert harness.tasks.owner("thirdparty_task") == "lsh_test_good"
    monkeypatch.setenv("LINGSPACE_LOAD_PLUGINS", "")
    assert "thirdparty_task" not in load_harness().tasks
    assert BUILTINS <= set(load_harness().plugins)
    monkeypatch.setenv("LINGSPACE_LOAD_PLUGINS", "lsh-test-good")  # by distribution name
    assert "thirdparty_task" in load_harness().tasks


def test_tests_see_no_installed_third_party_plugin_unless_marked(site: Path) -> None:
    make_distribution(site, "lsh-test-good", "lsh_test_good", GOOD_PLUGIN)
    harness = load_harness()
    assert "thirdparty_task" not in harness.tasks and "lsh_test_good" not in harness.plugins
    assert BUILTINS == set(harness.plugins)


@pytest.mark.third_party_plugins
def test_disable_list_blocks_builtins_and_third_party(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(site, "lsh-test-good", "lsh_test_good", GOOD_PLUGIN)
    monkeypatch.setenv("LINGSPACE_DISABLE_PLUGINS", "blimp,lsh_test_good")
    harness = load_harness()
    assert "thirdparty_task" not in harness.tasks
    assert not [name for name in harness.tasks.names() if name.startswith("blimp_")]
    assert "blimp" not in harness.plugins and "accuracy" in harness.plugins


@pytest.mark.third_party_plugins
def test_broken_plugin_warns_once_and_the_rest_loads(site: Path, capsys: pytest.CaptureFixture) -> None:
    make_distribution(site, "lsh-test-broken", "lsh_test_broken", "import no_such_module_xyz\n")
    harness = load_harness()
    assert len(harness.warnings) == 1
    assert "lsh_test_broken" in harness.warnings[0] and "no_such_module_xyz" in harness.warnings[0]
    assert len(harness.tasks.select(["blimp_*"])) == 67
    assert main(["tasks", "blimp_adjunct_island"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[1].startswith("blimp_adjunct_island\t")
    assert [line for line in out.err.splitlines() if "lsh_test_broken" in line] == [out.err.strip()]


@pytest.mark.third_party_plugins
def test_verbose_shows_a_broken_plugins_traceback(site: Path, capsys: pytest.CaptureFixture) -> None:
    make_distribution(site, "lsh-test-broken", "lsh_test_broken", "import no_such_module_xyz\n")
    assert main(["tasks", "blimp_adjunct_island", "-v"]) == 0
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in err
    assert main(["tasks", "--strict", "-v"]) == 2  # strict: the error keeps the import error as its cause
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1].startswith("error: plugin 'lsh_test_broken'")
    assert "ModuleNotFoundError" in err


@pytest.mark.third_party_plugins
def test_strict_makes_a_broken_plugin_fatal(site: Path, capsys: pytest.CaptureFixture) -> None:
    make_distribution(site, "lsh-test-broken", "lsh_test_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="boom"):
        load_harness(strict=True)
    assert main(["tasks", "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "boom" in err and "Traceback" not in err


def test_plugin_failing_in_register_is_reported(lingspace_plugin) -> None:
    class Failing:
        @hookimpl
        def lingspace_register_metrics(self, register):
            raise ValueError("cannot register")

    lingspace_plugin(Failing(), "failing")
    harness = load_harness()
    assert any("failing" in w and "cannot register" in w for w in harness.warnings)
    assert "accuracy" in harness.metrics


def test_misspelt_hook_is_rejected_early(lingspace_plugin) -> None:
    class Typo:
        @hookimpl
        def lingspace_register_metric(self, register):  # missing the final "s"
            pass

    lingspace_plugin(Typo(), "typo")
    harness = load_harness()
    assert "typo" not in harness.plugins
    assert any("lingspace_register_metric'" in w for w in harness.warnings)


def test_duplicate_name_names_both_plugins(lingspace_plugin) -> None:
    class Clash:
        @hookimpl
        def lingspace_register_phenomena(self, register):
            register(Task(name="blimp_adjunct_island", phenomenon="x", field="y", source="z", load=lambda o: []))

    lingspace_plugin(Clash(), "clash")
    with pytest.raises(PluginError, match=r"'blimp'.*'clash'"):
        load_harness()


def test_unknown_names_get_a_suggestion() -> None:
    harness = load_harness()
    with pytest.raises(UnknownNameError, match="did you mean 'accuracy'"):
        harness.metrics.get("acuracy")
    with pytest.raises(UnknownNameError, match="did you mean 'blimp_adjunct_island'"):
        harness.tasks.select(["blimp_adjunct_islnd"])


class EveryHook:
    """One plugin implementing every hook, as a third party would."""

    @hookimpl
    def lingspace_register_phenomena(self, register):
        register(
            Task(
                name="every_task",
                phenomenon="p",
                field="f",
                source="test",
                load=lambda options: [
                    MinimalPair(str(i), f"The cat runs {i}.", f"The cat run {i}.") for i in range(10)
                ],
            )
        )

    @hookimpl
    def lingspace_register_model_loaders(self, register):
        class Loader:
            name, description = "every_loader", "never claims anything"

            def claims(self, spec):
                return False

            def load(self, spec, options):
                raise AssertionError("not used")

        register(Loader())

    @hookimpl
    def lingspace_register_gradient_strategies(self, register):
        class Strategy:
            name, description, kind = "every_strategy", "the index of the largest |entry|", "mask"

            def reduce(self, grad, layout, options):
                import numpy as np

                return np.array([int(np.argmax(np.abs(grad)))])

        register(Strategy())

    @hookimpl
    def lingspace_register_metrics(self, register):
        class Diagonal:
            name, description = "every_metric", "an identity space built through a strategy"

            def strategies(self, ctx):
                return ["every_strategy"]

            def compute(self, ctx):
                n = len(ctx.task_names)
                picks = [ctx.gradient("every_strategy", t).tolist() for t in ctx.task_names]
                return MetricResult(
                    space=Space(ctx.task_names, [[float(i == j) for j in range(n)] for i in range(n)], {"picks": picks})
                )

        register(Diagonal())

    @hookimpl
    def lingspace_register_space_builders(self, register):
        class Trace:
            name, description = "every_builder", "trace of each space"

            def build(self, results, ctx):
                return {m: sum(s["matrix"][i][i] for i in range(len(s["tasks"]))) for m, s in results["spaces"].items()}

        register(Trace())

    @hookimpl
    def lingspace_register_reporters(self, register):
        class Count:
            name, description = "every_reporter", "writes the number of tasks"

            def report(self, results, out_dir):
                path = out_dir / "count.txt"
                path.write_text(str(len(results["tasks"])))
                return [path]

        register(Count())

    @hookimpl
    def lingspace_register_commands(self, register):
        class Hello:
            name, help = "hello", "greet"

            def add_arguments(self, parser: argparse.ArgumentParser) -> None:
                parser.add_argument("who")

            def run(self, args, harness):
                print(f"hello {args.who}, {len(harness.tasks)} tasks")
                return 0

        register(Hello())


def test_every_hook_reaches_its_registry(
    lingspace_plugin, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lingspace_plugin(EveryHook(), "every")
    harness = load_harness()
    for registry, name in [
        (harness.tasks, "every_task"),
        (harness.model_loaders, "every_loader"),
        (harness.gradient_strategies, "every_strategy"),
        (harness.metrics, "every_metric"),
        (harness.space_builders, "every_builder"),
        (harness.reporters, "every_reporter"),
        (harness.commands, "hello"),
    ]:
        assert registry.owner(name) == "every"
    assert len(harness.plugins["every"].hooks) == 7

    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world, 68 tasks\n"

    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "every_task",
                "--metric",
                "every_metric",
                "--report",
                "every_reporter",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    space = results["spaces"]["every_metric"]
    assert space["tasks"] == ["every_task"] and space["matrix"] == [[1.0]]
    assert len(space["picks"]) == 1 and len(space["picks"][0]) == 1  # went through ctx.gradient
    assert list((out / "units" / "gradient-every_strategy").glob("every_task-*.npy"))
    assert (out / "count.txt").read_text() == "1"
    assert "every_builder" in harness.space_builders
    assert results["analysis"]["every_builder"] == {"every_metric": 1.0}


def test_plugin_without_hooks_is_skipped_with_a_warning(lingspace_plugin) -> None:
    class Unmarked:
        def lingspace_register_metrics(self, register):  # @hookimpl forgotten
            raise AssertionError("never called")

    lingspace_plugin(Unmarked(), "unmarked")
    harness = load_harness()
    assert "unmarked" not in harness.plugins
    assert any("unmarked" in w and "@hookimpl" in w for w in harness.warnings)


def test_a_plugin_cannot_replace_a_core_command(lingspace_plugin, capsys) -> None:
    class Shadow:
        @hookimpl
        def lingspace_register_commands(self, register):
            class Run:
                name, help = "run", "not the real run"

                def add_arguments(self, parser):
                    pass

                def run(self, args, harness):
                    return 0

            register(Run())

    lingspace_plugin(Shadow(), "shadow")
    assert main(["metrics"]) == 2
    assert "'shadow'" in capsys.readouterr().err


@pytest.mark.third_party_plugins
def test_strict_works_before_and_after_the_sub_command(site: Path, capsys) -> None:
    make_distribution(site, "lsh-test-broken", "lsh_test_broken", "raise RuntimeError('boom')\n")
    assert main(["--strict", "metrics"]) == 2
    assert main(["metrics", "--strict"]) == 2
    assert main(["metrics"]) == 0


def test_a_metric_without_compute_is_rejected_at_registration(lingspace_plugin, capsys, tmp_path: Path) -> None:
    class NoCompute:
        name, description = "nocompute", "forgot compute"

    class Fine:
        name, description = "fine_metric", "has compute"

        def compute(self, ctx):
            return MetricResult()

    class Plugin:
        @hookimpl
        def lingspace_register_metrics(self, register):
            register(NoCompute())
            register(Fine())

    lingspace_plugin(Plugin(), "halfdone")
    harness = load_harness()
    assert "nocompute" not in harness.metrics and "fine_metric" in harness.metrics
    assert harness.warnings == [
        "plugin 'halfdone' registered the metric 'nocompute' without compute() "
        "(a metric needs name, description, compute()); it was skipped"
    ]
    assert harness.plugins["halfdone"].registered == {"metric": ["fine_metric"]}
    with pytest.raises(PluginError, match=r"'halfdone'.*without compute\(\)"):
        load_harness(strict=True)
    assert main(["metrics"]) == 0  # one warning line, before anything loads
    err = capsys.readouterr().err
    assert err.splitlines() == [f"warning: {harness.warnings[0]}"]
    assert (
        main(
            [
                "run",
                "--model",
                "no/such/model",
                "--tasks",
                "blimp_passive_1",
                "--metric",
                "nocompute",
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"warning: {harness.warnings[0]}" and err[1].startswith("error: unknown metric 'nocompute'")


def test_an_executor_without_execute_is_rejected(lingspace_plugin) -> None:
    class Plugin:
        @hookimpl
        def lingspace_register_executors(self, register):
            class Lazy:
                name, description = "lazy", "runs nothing"

                execute = "not a method"

            register(Lazy())

    lingspace_plugin(Plugin(), "lazy_plugin")
    harness = load_harness()
    assert "lazy" not in harness.executors
    assert len(harness.warnings) == 1
    assert "plugin 'lazy_plugin'" in harness.warnings[0] and "without execute()" in harness.warnings[0]


# What an object with only a name lacks, per kind: the protocols' other attributes and methods.
LACKS = {
    "task": "phenomenon, field, source, load()",
    "task source": "description, claims(), resolve()",
    "model loader": "description, claims(), load()",
    "gradient strategy": "description, kind, reduce()",
    "metric": "description, compute()",
    "space builder": "description, build()",
    "hypothesis": "description, matrix()",
    "executor": "description, execute()",
    "reporter": "description, report()",
    "command": "help, add_arguments(), run()",
}


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_kind_checks_its_protocol(hook: str, lingspace_plugin) -> None:
    kind = HOOKS[hook][0]

    class Bare:
        name = "bare_thing"

    def register_bare(self, register):
        register(Bare())

    register_bare.__name__ = hook
    plugin = type("BarePlugin", (), {hook: hookimpl(register_bare)})()
    lingspace_plugin(plugin, "bare")
    harness = load_harness()
    assert "bare_thing" not in harness.registries[hook]
    [warning] = harness.warnings
    assert warning.startswith(f"plugin 'bare' registered the {kind} 'bare_thing' without {LACKS[kind]} (")
