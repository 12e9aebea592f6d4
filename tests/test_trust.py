"""Trustworthy runs: content-addressed units, one run per output directory, plugins that own
their options, dependencies by declaration, and a core that needs no built-in by name."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import one_line_error as one_line
from test_cli import run_cli

from lingspace_harness import MetricResult, Space, hookimpl
from lingspace_harness.cli import main

TASK = "blimp_anaphor_gender_agreement"


@pytest.fixture
def data_copy(blimp_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "blimp"
    target.mkdir()
    shutil.copy(blimp_dir / "anaphor_gender_agreement.jsonl", target)
    return target


def swap_good_and_bad(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row["sentence_good"], row["sentence_bad"] = row["sentence_bad"], row["sentence_good"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_changed_data_is_never_served_from_old_units(capsys, tiny_model: Path, data_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = [
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        TASK,
        "--data-dir",
        str(data_copy),
        "--limit",
        "40",
        "--output",
        str(out),
    ]
    assert run_cli(capsys, *base)[0] == 0
    first = json.loads((out / "results.json").read_text())
    before = first["tasks"][TASK]["accuracy"]
    assert run_cli(capsys, *base)[0] == 0  # the same run resumes
    swap_good_and_bad(data_copy / "anaphor_gender_agreement.jsonl")
    code, _, err = run_cli(capsys, *base)
    assert code == 2
    one_line(err, "holds another run", TASK, "--overwrite")
    assert run_cli(capsys, *base, "--overwrite")[0] == 0
    after = json.loads((out / "results.json").read_text())
    assert after["tasks"][TASK]["accuracy"] == pytest.approx(1 - before)  # no ties on this task
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    swapped = {
        json.loads(line)["pairID"]: json.loads(line)
        for line in (data_copy / "anaphor_gender_agreement.jsonl").read_text().splitlines()
    }
    assert all(p["sentence_good"] == swapped[p["pairID"]]["sentence_good"] for p in pairs)
    assert after["fingerprints"]["tasks"][TASK] != first["fingerprints"]["tasks"][TASK]
    assert after["fingerprints"]["model"] == first["fingerprints"]["model"]


def test_another_config_into_a_used_directory_is_refused(
    capsys, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    common = ["run", "--model", str(tiny_model), "--data-dir", str(blimp_dir), "--limit", "4", "--output", str(out)]
    assert run_cli(capsys, *common, "--tasks", TASK)[0] == 0
    code, _, err = run_cli(capsys, *common, "--tasks", "blimp_anaphor_number_agreement")
    assert code == 2
    one_line(err, "tasks")
    assert json.loads((out / "results.json").read_text())["config"]["tasks"] == [TASK]
    assert json.loads((out / "run.json").read_text())["config"]["tasks"] == [TASK]


def test_a_unit_whose_stored_key_differs_is_recomputed(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare

    config = RunConfig(model=str(tiny_model), tasks=[TASK], data_dir=blimp_dir, limit=4, output=tmp_path / "o")
    ctx = prepare(load_harness(), config)
    scores = ctx.scores("test")
    store = ctx.units("scores-test")
    assert store.has(TASK, ".json")
    key = json.loads(store.key_path(TASK, ".json").read_text())
    key["data"] = "something else"
    store.key_path(TASK, ".json").write_text(json.dumps(key))
    assert not store.has(TASK, ".json")
    again = prepare(load_harness(), config)
    assert [s.margin for s in again.scores("test")[TASK]] == [s.margin for s in scores[TASK]]
    assert store.has(TASK, ".json")


@dataclass(frozen=True)
class AlphaOptions:
    alpha: float = 1.0


class AlphaMetric:
    name = "mymetric"
    description = "a third-party metric with an option of its own"
    Options = AlphaOptions
    seen: list[float] = []

    def add_arguments(self, group) -> None:
        group.add_argument("--mymetric-alpha", dest="alpha", type=float, help="how much alpha")

    def compute(self, ctx) -> MetricResult:
        alpha = ctx.options(self.name).alpha
        self.seen.append(alpha)
        tasks = ctx.task_names
        return MetricResult(space=Space(tasks, [[alpha] * len(tasks) for _ in tasks]))


class AlphaPlugin:
    @hookimpl
    def lingspace_register_metrics(self, register):
        register(AlphaMetric())


def test_a_third_party_metric_owns_its_option(
    capsys, lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    lingspace_plugin(AlphaPlugin(), "alpha-plugin")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--mymetric-alpha" in capsys.readouterr().out
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        TASK,
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "4",
        "--metric",
        "mymetric",
        "--mymetric-alpha",
        "0.25",
        "--output",
        str(out),
    )
    assert code == 0, err
    assert AlphaMetric.seen[-1] == 0.25
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["options"]["metric"]["mymetric"] == {"alpha": 0.25}
    assert results["spaces"]["mymetric"]["matrix"] == [[0.25]]


class NeedyMetric:
    name = "needy"
    description = "needs what nobody provides"
    needs = ("crystal-ball",)

    def compute(self, ctx) -> MetricResult:
        raise AssertionError("never reached")


class NeedyPlugin:
    @hookimpl
    def lingspace_register_metrics(self, register):
        register(NeedyMetric())


def test_a_missing_provider_is_one_line_before_any_work(
    capsys, lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    lingspace_plugin(NeedyPlugin(), "needy-plugin")
    code, _, err = run_cli(
        capsys,
        "run",
        "--model",
        str(tiny_model),
        "--tasks",
        TASK,
        "--data-dir",
        str(blimp_dir),
        "--metric",
        "needy",
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2
    one_line(err, "needy", "crystal-ball")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("disabled", ["accuracy", "executors", "strategies"])
def test_disabling_a_builtin_leaves_run_working_or_says_what_is_missing(
    capsys, monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path, disabled: str
) -> None:
    monkeypatch.setenv("LINGSPACE_DISABLE_PLUGINS", disabled)
    out = tmp_path / "out"
    base = ["run", "--model", str(tiny_model), "--tasks", TASK, "--data-dir", str(blimp_dir), "--limit", "4"]
    if disabled == "strategies":
        code, _, err = run_cli(capsys, *base, "--metric", "overlap", "--output", str(out))
        assert code == 2
        one_line(err, "overlap", "mask", "LINGSPACE_DISABLE_PLUGINS")
        return
    code, _, err = run_cli(capsys, *base, "--output", str(out))
    assert code == 0, err
    task = json.loads((out / "results.json").read_text())["tasks"][TASK]
    assert ("accuracy" in task) == (disabled != "accuracy")
    assert task["n_test"] == 4
