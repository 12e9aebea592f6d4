"""The optional base classes (lingspace_harness.bases): a subclass with only its kind's required
members registers cleanly, runs, and has no capability its base did not give it a neutral default for."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lingspace_harness as lh
from lingspace_harness import (
    AnalysisContext,
    CommandBase,
    DataOptions,
    ExecutorBase,
    GradientStrategyBase,
    HypothesisBase,
    LoadedModel,
    MetricBase,
    MetricResult,
    MinimalPair,
    ModelLoaderBase,
    ModelOptions,
    ParamLayout,
    Registries,
    ReporterBase,
    RunContext,
    RunPlan,
    Space,
    SpaceBuilderBase,
    Task,
    TaskSourceBase,
    Unit,
    WorkerSpec,
    hookimpl,
    load_harness,
)
from lingspace_harness.capabilities import (
    OPTIONAL,
    Configurable,
    HasLayerSlices,
    HasOptions,
    HasUnits,
    ReadsGradients,
    ReducesOnDevice,
    half_protocols,
    is_always,
    near_misses,
    needs,
    provides,
)
from lingspace_harness.cli import main
from lingspace_harness.registry import Contract


class Source(TaskSourceBase):
    name = "base_source"

    def claims(self, spec: str) -> bool:
        return False

    def resolve(self, specs: list[str], options: DataOptions) -> list[Task]:
        return []


class Loader(ModelLoaderBase):
    name = "base_loader"

    def claims(self, spec: str) -> bool:
        return False

    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        raise AssertionError("not used")


class Strategy(GradientStrategyBase):
    name, kind = "base_strategy", "mask"

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: Any) -> np.ndarray:
        return np.array([int(np.argmax(np.abs(grad)))])


class Metric(MetricBase):
    name = "base_metric"

    def compute(self, ctx: RunContext) -> MetricResult:
        return MetricResult()


class Builder(SpaceBuilderBase):
    name = "base_builder"

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        return {"spaces": sorted(results["spaces"])}


class Hypothesis(HypothesisBase):
    name = "base_hypothesis"

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> np.ndarray | None:
        return None


class Executor(ExecutorBase):
    name = "base_executor"

    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        runner = worker.build()
        for stage in stages:
            for unit in stage:
                runner.run(unit)


class Reporter(ReporterBase):
    name = "base_reporter"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        path = out_dir / "base.txt"
        path.write_text(str(len(results["tasks"])))
        return [path]


class Command(CommandBase):
    name = "base_hello"

    def run(self, args: argparse.Namespace, harness: Registries) -> int:
        print("hello from a base")
        return 0


class GradientMetric(Metric):
    """A metric that reads the strategy (``strategies`` added by the subclass): an identity space."""

    name = "base_gradient_metric"

    def strategies(self, ctx: RunPlan) -> list[str]:
        return ["base_strategy"]

    def compute(self, ctx: RunContext) -> MetricResult:
        n = len(ctx.task_names)
        picks = [ctx.gradient("base_strategy", t).tolist() for t in ctx.task_names]
        return MetricResult(space=Space(ctx.task_names, np.eye(n).tolist(), {"picks": picks}))


#: (kind, as in capabilities.OPTIONAL and the harness's messages; its protocol; an instance of its base's subclass)
OBJECTS: list[tuple[str, type, Any]] = [
    ("task source", lh.TaskSource, Source()),
    ("model loader", lh.ModelLoader, Loader()),
    ("gradient strategy", lh.GradientStrategy, Strategy()),
    ("metric", lh.Metric, Metric()),
    ("space builder", lh.SpaceBuilder, Builder()),
    ("hypothesis", lh.Hypothesis, Hypothesis()),
    ("executor", lh.Executor, Executor()),
    ("reporter", lh.Reporter, Reporter()),
    ("command", lh.Command, Command()),
]


class EveryBase:
    """A plugin registering one subclass of each base, with only its kind's required members."""

    @hookimpl
    def lingspace_register_phenomena(self, register):
        register(
            Task(
                name="base_task",
                phenomenon="p",
                field="f",
                source="test",
                load=lambda options: [
                    MinimalPair(str(i), f"The cat runs {i}.", f"The cat run {i}.") for i in range(10)
                ],
            )
        )

    @hookimpl
    def lingspace_register_task_sources(self, register):
        register(Source())

    @hookimpl
    def lingspace_register_model_loaders(self, register):
        register(Loader())

    @hookimpl
    def lingspace_register_gradient_strategies(self, register):
        register(Strategy())

    @hookimpl
    def lingspace_register_metrics(self, register):
        register(Metric())
        register(GradientMetric())

    @hookimpl
    def lingspace_register_space_builders(self, register):
        register(Builder())

    @hookimpl
    def lingspace_register_hypotheses(self, register):
        register(Hypothesis())

    @hookimpl
    def lingspace_register_executors(self, register):
        register(Executor())

    @hookimpl
    def lingspace_register_reporters(self, register):
        register(Reporter())

    @hookimpl
    def lingspace_register_commands(self, register):
        register(Command())


@pytest.fixture
def every_base() -> Iterator[None]:
    lh.register_plugin(EveryBase(), "bases")
    yield
    lh.unregister_plugin("bases")


def test_a_subclass_of_each_base_with_only_the_required_members_registers_cleanly(every_base) -> None:
    harness = load_harness(strict=True)  # strict: any warning (a half protocol, a near miss) would raise
    assert harness.warnings == []
    for registry, name in [
        (harness.task_sources, "base_source"),
        (harness.model_loaders, "base_loader"),
        (harness.gradient_strategies, "base_strategy"),
        (harness.metrics, "base_metric"),
        (harness.space_builders, "base_builder"),
        (harness.hypotheses, "base_hypothesis"),
        (harness.executors, "base_executor"),
        (harness.reporters, "base_reporter"),
        (harness.commands, "base_hello"),
    ]:
        assert registry.owner(name) == "bases"
    assert harness.plugins["bases"].registered["metric"] == ["base_metric", "base_gradient_metric"]


@pytest.mark.parametrize("kind, protocol, item", OBJECTS, ids=[k for k, _, _ in OBJECTS])
def test_a_base_gives_no_half_protocol_no_near_miss_and_no_capability(kind: str, protocol: type, item: Any) -> None:
    assert isinstance(item, protocol)  # the base keeps its kind's protocol
    assert half_protocols(item, kind) == []
    assert near_misses(item, kind, Contract.of(protocol).names()) == []
    # the capabilities that are on by mere presence are left to the subclass (a command's
    # add_arguments(parser) is one of its required members, not the run options of Configurable)
    for optional in (Configurable, HasOptions, ReadsGradients, HasUnits, HasLayerSlices, ReducesOnDevice):
        assert not isinstance(item, optional) or (kind, optional) == ("command", Configurable), optional.__name__
    # and the defaults that are there change nothing
    assert getattr(item, "help" if kind == "command" else "description") == ""
    assert not is_always(item) and needs(item) == () and provides(item) == ()
    assert not getattr(item, "scores_only", False)


def test_every_kind_with_optional_members_has_a_base() -> None:
    assert set(OPTIONAL) <= {kind for kind, _, _ in OBJECTS}


def test_the_neutral_defaults() -> None:
    metric = Metric()
    assert metric.check(None, scores_only=True) is None  # accepts every run
    assert metric.summary({"tasks": {}}) is None  # adds nothing to run's last line
    assert Executor().check(lh.RunConfig(model="m", tasks=["t"])) is None
    parser = argparse.ArgumentParser()
    Command().add_arguments(parser)  # adds no argument
    assert vars(parser.parse_args([])) == {}


@pytest.mark.parametrize(
    "base",
    [
        TaskSourceBase,
        ModelLoaderBase,
        GradientStrategyBase,
        MetricBase,
        SpaceBuilderBase,
        HypothesisBase,
        ExecutorBase,
        ReporterBase,
        CommandBase,
    ],
)
def test_a_subclass_without_a_required_method_cannot_be_instantiated(base: type) -> None:
    incomplete = type("Incomplete", (base,), {"name": "incomplete"})
    with pytest.raises(TypeError, match="abstract"):
        incomplete()


def test_an_optional_member_a_subclass_adds_is_checked_as_on_a_plain_class(lingspace_plugin) -> None:
    class HalfUnits(Metric):
        name = "base_half_units"

        def units(self, ctx: RunContext) -> list[Unit]:
            return []

    class Plugin:
        @hookimpl
        def lingspace_register_metrics(self, register):
            register(HalfUnits())
            register(GradientMetric())

    lingspace_plugin(Plugin(), "half")
    harness = load_harness()
    assert "base_half_units" not in harness.metrics
    assert harness.warnings == [
        "plugin 'half' registered the metric 'base_half_units' with units() without run_unit(); it was skipped"
    ]
    assert isinstance(harness.metrics.get("base_gradient_metric"), ReadsGradients)


def test_subclasses_of_the_bases_run(every_base, tiny_model: Path, tmp_path: Path, capsys) -> None:
    assert main(["base_hello"]) == 0
    assert capsys.readouterr().out == "hello from a base\n"
    out = tmp_path / "out"
    argv = ["run", "--model", str(tiny_model), "--tasks", "base_task", "--output", str(out)]
    argv += ["--metric", "base_metric,base_gradient_metric", "--executor", "base_executor", "--report", "base_reporter"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    space = results["spaces"]["base_gradient_metric"]
    assert space["matrix"] == [[1.0]] and len(space["picks"][0]) == 1  # through the strategy's reduce
    assert results["analysis"]["base_builder"] == {"spaces": ["base_gradient_metric"]}
    assert (out / "base.txt").read_text() == "1"
    assert "base_metric" not in json.dumps(results["config"]["options"])  # no options of its own: none recorded
