"""One resolved run: options keyed by (kind, name), every kind's options reachable, a directory
that is the same run while its units agree (moved, re-spelled, another metric added), and
``run --config`` reproducing a run from its own record."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import one_line_error as one_line
from test_cli import run_cli

from lingspace_harness import hookimpl
from lingspace_harness.cli import main
from lingspace_harness.execution import Worker
from lingspace_harness.kinds import KINDS, OPTIONED
from lingspace_harness.plugins import HOOKS, load_harness

TASKS = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement"


@dataclass(frozen=True)
class SepOptions:
    sep: str = ","


class AccuracyReporter:
    """A reporter named like the built-in metric ``accuracy``, with an option of its own."""

    name, description, Options = "accuracy", "writes accuracies.csv", SepOptions
    seen: list[SepOptions] = []

    def add_arguments(self, group) -> None:
        group.add_argument("--sep", help="column separator (default ,)")

    def report(self, results, out_dir: Path, options: SepOptions) -> list[Path]:
        self.seen.append(options)
        path = out_dir / "accuracies.csv"
        rows = [f"{t}{options.sep}{r['accuracy']}" for t, r in results["tasks"].items()]
        path.write_text("\n".join(rows) + "\n")
        return [path]


@dataclass(frozen=True)
class ScaleOptions:
    scale: float = 1.0


class ScaleBuilder:
    """A space builder with an option: the largest cell of each space, times ``scale``."""

    name, description, Options = "scaled_max", "the largest cell of each space, scaled", ScaleOptions

    def add_arguments(self, group) -> None:
        group.add_argument("--scaled-max-scale", dest="scale", type=float, help="factor (default 1)")

    def build(self, results, ctx):
        scale = ctx.options(self.name).scale
        return {
            name: scale * max(c for row in s["matrix"] for c in row if c is not None)
            for name, s in results["spaces"].items()
        }


class SameNamePlugin:
    @hookimpl
    def lingspace_register_reporters(self, register):
        register(AccuracyReporter())

    @hookimpl
    def lingspace_register_space_builders(self, register):
        register(ScaleBuilder())


def base(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--model",
        str(model),
        "--tasks",
        TASKS,
        "--data-dir",
        str(data),
        "--limit",
        "8",
        "--output",
        str(out),
        *extra,
    ]


def test_the_kinds_table_is_where_hooks_registries_and_option_groups_come_from() -> None:
    from lingspace_harness import hookspecs

    specs = {n for n in dir(hookspecs) if n.startswith("lingspace_register_")}
    assert specs == {k.hook for k in KINDS} == set(HOOKS)
    harness = load_harness()
    assert list(harness.registries_by_kind()) == [k.id for k in KINDS]
    assert set(OPTIONED) == {"gradient_strategy", "metric", "space_builder", "executor", "reporter"}
    from lingspace_harness.capabilities import OPTIONAL, Configurable, HasOptions

    assert set(OPTIONAL) <= {k.label for k in KINDS}  # the optional protocols name kinds of the table
    optioned = {label for label, protocols in OPTIONAL.items() if {Configurable, HasOptions} & set(protocols)}
    assert optioned == {k.label for k in KINDS if k.options}


def test_a_reporter_named_like_a_metric_owns_its_option(
    capsys, lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    lingspace_plugin(SameNamePlugin(), "same-name")
    assert run_cli(capsys, "--strict", "plugins")[0] == 0  # it loads, even with --strict
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, *base(tiny_model, blimp_dir, out, "--report", "accuracy", "--sep", ";", "--normalise", "tokens")
    )
    assert code == 0, err
    assert AccuracyReporter.seen[-1] == SepOptions(";")
    assert ";" in (out / "accuracies.csv").read_text()
    options = json.loads((out / "results.json").read_text())["config"]["options"]
    assert options["reporter"]["accuracy"] == {"sep": ";"}
    assert options["metric"]["accuracy"] == {"normalise": "tokens"}


def test_a_space_builder_option_reaches_the_builder_in_run_and_in_analyse(
    capsys, lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    lingspace_plugin(SameNamePlugin(), "same-name")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *base(tiny_model, blimp_dir, out, "--metric", "gradsim", "--scaled-max-scale", "2"))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    largest = max(c for row in results["spaces"]["gradsim"]["matrix"] for c in row if c is not None)
    assert results["analysis"]["scaled_max"]["gradsim"] == pytest.approx(2 * largest)
    assert results["config"]["options"]["space_builder"]["scaled_max"] == {"scale": 2.0}
    code, _, err = run_cli(capsys, "analyse", str(out), "--builders", "scaled_max", "--scaled-max-scale", "3")
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert again["analysis"]["scaled_max"]["gradsim"] == pytest.approx(3 * largest)
    code, _, err = run_cli(capsys, "analyse", str(out), "--builders", "scaled_max", "--scaled-max-scale", "x")
    assert code == 2
    one_line(err, "--scaled-max-scale", "'x'")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The units each run computes, as ``kind:name`` (in-process executor)."""
    seen: list[str] = []
    original = Worker.run

    def run(self, unit):
        seen.append(f"{unit.variant}{unit.kind}:{unit.name}")
        return original(self, unit)

    monkeypatch.setattr(Worker, "run", run)
    return seen


def test_adding_a_metric_reuses_every_stored_unit(
    capsys, counted: list[str], tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli(capsys, *base(tiny_model, blimp_dir, out, "--metric", "gradsim"))[0] == 0
    first, stored = (
        list(counted),
        {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*") if p.is_file() and "seconds-" not in str(p)},
    )
    assert first and all("gradient" in u for u in first)
    gradsim = json.loads((out / "results.json").read_text())["spaces"]["gradsim"]
    counted.clear()
    code, _, err = run_cli(capsys, *base(tiny_model, blimp_dir, out, "--metric", "gradsim,overlap"))
    assert code == 0, err
    fresh = tmp_path / "fresh"
    added = list(counted)
    counted.clear()
    assert run_cli(capsys, *base(tiny_model, blimp_dir, fresh, "--metric", "overlap"))[0] == 0
    assert sorted(added) == sorted(counted)  # only what overlap alone needs, nothing of gradsim's again
    assert {p: p.stat().st_mtime_ns for p in stored} == stored  # no stored unit (but timings) was rewritten
    results = json.loads((out / "results.json").read_text())
    assert results["spaces"]["gradsim"] == gradsim and "overlap" in results["spaces"]
    counted.clear()
    assert run_cli(capsys, *base(tiny_model, blimp_dir, out, "--metric", "gradsim,overlap"))[0] == 0
    assert counted == []  # the same run again computes nothing


def test_a_moved_or_respelled_directory_is_the_same_run(
    capsys, counted: list[str], tiny_model: Path, blimp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, *base(tiny_model, blimp_dir, Path("out"), "--metric", "gradsim"))[0] == 0
    spaces = json.loads((tmp_path / "out" / "results.json").read_text())["spaces"]
    counted.clear()
    respelled = base(tiny_model, blimp_dir, tmp_path / "out", "--metric", "gradsim", "--permutations", "99")
    code, _, err = run_cli(capsys, *respelled, "--report", "markdown", "--analysis", "none")
    assert code == 0, err
    shutil.move(tmp_path / "out", tmp_path / "moved")
    code, _, err = run_cli(capsys, *base(tiny_model, blimp_dir, Path("moved"), "--metric", "gradsim"))
    assert code == 0, err
    assert counted == []
    assert json.loads((tmp_path / "moved" / "results.json").read_text())["spaces"] == spaces
    code, _, err = run_cli(capsys, *base(tiny_model, blimp_dir, Path("moved"), "--metric", "gradsim", "--seed", "3"))
    assert code == 2  # what units depend on still conflicts, and says so before anything loads
    one_line(err, "holds another run (seed, projected.seed differ)", "--overwrite")


def test_run_config_reproduces_a_run_from_its_own_record(
    capsys, counted: list[str], tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, *base(tiny_model, blimp_dir, out, "--metric", "overlap", "--topk", "0.05", "--seed", "2")
    )
    assert code == 0, err
    before = json.loads((out / "results.json").read_text())
    counted.clear()
    record = tmp_path / "run.json"
    shutil.copy(out / "run.json", record)
    code, _, err = run_cli(capsys, "run", "--config", str(record))
    assert code == 0, err
    assert counted == []  # its own record is the same run: nothing is computed again
    after = json.loads((out / "results.json").read_text())
    assert after["spaces"] == before["spaces"] and after["config"] == before["config"]
    other = tmp_path / "other"
    code, _, err = run_cli(capsys, "run", "--config", str(record), "--output", str(other), "--topk", "0.1")
    assert code == 0, err  # options given on the command line win
    options = json.loads((other / "results.json").read_text())["config"]["options"]
    assert options["gradient_strategy"]["topk"] == {"topk": 0.1}
    assert json.loads((other / "run.json").read_text())["config"]["seed"] == 2
    (tmp_path / "bad.json").write_text(json.dumps({"model": str(tiny_model), "tasks": [TASKS], "sede": 1}))
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path / "bad.json"))
    assert code == 2
    one_line(err, "unknown setting(s) sede")
    code, _, err = run_cli(capsys, "run", "--tasks", TASKS)
    assert code == 2
    one_line(err, "--model is required")


def test_run_help_shows_plain_metavars(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "PLUGIN:" not in text and "plugin:" not in text
    assert "--ftgd-steps FTGD_STEPS" in text and "--topk TOPK" in text
    assert "transfer (metric, plugin ftgd)" in text


def test_a_run_recorded_before_options_were_kept_by_kind_resumes(
    capsys, counted: list[str], tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = base(tiny_model, blimp_dir, out, "--metric", "overlap", "--topk", "0.05")
    assert run_cli(capsys, *argv)[0] == 0
    record = json.loads((out / "run.json").read_text())
    nested = record["config"]["options"]
    assert nested == {"metric": {"accuracy": {"normalise": "none"}}, "gradient_strategy": {"topk": {"topk": 0.05}}}
    record["config"]["options"] = {"accuracy": {"normalise": "none"}, "topk": {"topk": 0.05}}  # as written before
    (out / "run.json").write_text(json.dumps(record))
    counted.clear()
    assert run_cli(capsys, *argv)[0] == 0
    assert counted == []  # the same run: every unit reused
    assert json.loads((out / "run.json").read_text())["config"]["options"] == nested  # and recorded by kind now
    code, _, err = run_cli(capsys, *base(tiny_model, blimp_dir, out, "--metric", "overlap", "--topk", "0.1"))
    assert code == 2  # the old record's options still count
    one_line(err, "holds another run (topk.topk differ)")
