"""Optional plugin members: checked at registration, read through their protocols only."""

from __future__ import annotations

from typing import Any

import pytest

from lingspace_harness import MetricResult, PluginError, Task, hookimpl, load_harness
from lingspace_harness.capabilities import OPTIONAL, HasUnits, half_protocols, members, near_misses
from lingspace_harness.cli import main
from lingspace_harness.resolve import learns


class Base:
    description = "a test metric"

    def compute(self, ctx: Any) -> MetricResult:
        return MetricResult()


def _plugin(*items: Any) -> Any:
    class Plugin:
        @hookimpl
        def lingspace_register_metrics(self, register):
            for item in items:
                register(item)

    return Plugin()


def test_a_misspelt_optional_member_is_a_warning_with_a_suggestion(lingspace_plugin) -> None:
    class Summarised(Base):
        name = "summarised"

        def summarise(self, results: dict) -> str:  # the harness reads ``summary``
            return "never printed"

    lingspace_plugin(_plugin(Summarised()), "typos")
    harness = load_harness()
    assert harness.warnings == [
        "plugin 'typos' registered the metric 'summarised' with 'summarise' (did you mean "
        "'summary'?), which the harness never reads"
    ]
    assert "summarised" in harness.metrics  # a warning: the metric still works, without its summary
    with pytest.raises(PluginError, match="did you mean 'summary'"):
        load_harness(strict=True)


def test_half_a_protocol_is_rejected_and_the_typo_named(lingspace_plugin) -> None:
    class Units(Base):
        name = "halfunits"

        def units(self, ctx: Any) -> list:
            return []

        def run_units(self, ctx: Any, unit: Any) -> None:  # the harness calls ``run_unit``
            pass

    lingspace_plugin(_plugin(Units()), "half")
    harness = load_harness()
    assert "halfunits" not in harness.metrics
    assert harness.warnings == [
        "plugin 'half' registered the metric 'halfunits' with units() without run_unit() "
        "(it has 'run_units' (did you mean 'run_unit'?)); it was skipped"
    ]


def test_builtins_have_no_near_misses_and_no_half_protocols() -> None:
    harness = load_harness(strict=True)  # strict: any warning would raise
    assert harness.warnings == []
    transfer = harness.metrics.get("transfer")
    assert isinstance(transfer, HasUnits) and near_misses(transfer, "metric", ("name",)) == []


def test_members_and_helpers() -> None:
    assert members(HasUnits) == ("units", "run_unit")
    assert all(members(p) for protocols in OPTIONAL.values() for p in protocols)

    class OnlyRun:
        def run_unit(self, ctx: Any, unit: Any) -> None: ...

    assert half_protocols(OnlyRun(), "metric") == ["run_unit() without units()"]
    assert half_protocols(OnlyRun(), "task") == []  # tasks have no optional protocols


def test_gradients_are_known_from_the_registry_not_from_a_method_name() -> None:
    class Reducer(Base):  # a metric that happens to have a method named ``reduce``
        name = "reducer"
        provides = ("thing",)

        def reduce(self, values: list) -> float:
            return sum(values)

    class Needy(Base):
        name = "needy"
        needs = ("thing",)

    reducer = Reducer()
    assert not learns(Needy(), {"thing": reducer}, gradient_strategies=[])
    assert learns(Needy(), {"thing": reducer}, gradient_strategies=[reducer])


@pytest.mark.parametrize(
    "option, fragment",
    [
        (["--metric", "gradsim", "--topk", "2"], "--topk must be in (0, 1], got 2.0"),
        (["--metric", "gradsim", "--projection-dim", "0"], "--projection-dim must be at least 1, got 0"),
        (["--metric", "transfer", "--ftgd-steps", "0"], "--ftgd-steps must be positive, got 0"),
        (["--metric", "transfer", "--ftgd-lr=-1e-4"], "--ftgd-lr must be positive, got -0.0001"),
        (["--metric", "lookahead", "--lookahead-batch", "0"], "--lookahead-batch must be positive, got 0"),
        (["--topk", "2"], "--topk must be in (0, 1]"),  # given, though no metric of this run reads it
        (["--metric", "gradsim", "--gradsim-strategy", "nope"], "--gradsim-strategy nope: no such gradient strategy"),
        (["--metric", "gradsim", "--gradsim-strategy", "topk"], "gradsim needs a vector strategy with layer_slices"),
    ],
)
def test_every_given_option_is_validated_before_anything_loads(
    option: list[str], fragment: str, lingspace_plugin, capsys, tmp_path
) -> None:
    loaded: list[str] = []

    class Watched:
        @hookimpl
        def lingspace_register_phenomena(self, register):
            register(
                Task(
                    name="watched_task",
                    phenomenon="p",
                    field="f",
                    source="memory",
                    load=lambda options: loaded.append("data") or [],
                )
            )

    lingspace_plugin(Watched(), "watched")
    code = main(
        [
            "run",
            "--model",
            str(tmp_path / "no-model-here"),
            "--tasks",
            "watched_task",
            "--output",
            str(tmp_path / "out"),
            *option,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {err[0].removeprefix('error: ')}"] and fragment in err[0]
    assert loaded == [] and not (tmp_path / "out").exists()  # neither the data nor the model was touched


def test_the_strategies_a_metric_reads_are_asked_of_the_plan_before_anything_loads(
    lingspace_plugin, capsys, tmp_path
) -> None:
    asked: list[Any] = []

    class Reader(Base):
        name = "reader"

        def strategies(self, ctx: Any) -> list[str]:
            asked.append(ctx)
            return [ctx.options("reader").get("strategy", "missing")]

    lingspace_plugin(_plugin(Reader()), "reader")
    out = tmp_path / "out"
    code = main(
        ["run", "--model", str(tmp_path / "no-model"), "--tasks", "blimp_*", "--metric", "reader", "--output", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown gradient strategy 'missing'" in err[0], err
    assert asked and not hasattr(asked[0], "data") and not out.exists()  # a plan: nothing loaded yet
