"""Executors and sharding: serial, Ray and merged shards give the same results.json."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lingspace_harness import Unit, hookimpl, load_harness
from lingspace_harness.cli import main

TASKS = "blimp_anaphor_*,blimp_passive_*,blimp_npi_present_1"


def run_args(model: Path, blimp_dir: Path, out: Path, metrics: str = "gradsim,overlap,transfer") -> list[str]:
    return [
        "run",
        "--model",
        str(model),
        "--tasks",
        TASKS,
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "6",
        "--metric",
        metrics,
        "--ftgd-steps",
        "2",
        "--output",
        str(out),
    ]


def same_results(a: Path, b: Path) -> None:
    """Equal in everything but where they were written and how they were executed."""
    left, right = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for results in (left, right):
        results.pop("execution")
        results["config"].pop("output")
    assert left == right


@pytest.fixture
def one_thread(torch_threads) -> None:
    """Ray workers use one torch thread each (--worker-cpus 1); CPU float sums depend on the
    thread count, so the serial run they are compared with uses one too."""
    torch_threads(1)


def test_three_shards_merged_equal_the_serial_run(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "serial")) == 0
    shared = tmp_path / "shards"
    for i in (0, 2):
        assert main(run_args(tiny_model, blimp_dir, shared) + ["--shard", f"{i}/3"]) == 0
    assert not (shared / "results.json").exists()
    capsys.readouterr()
    assert main(["merge", str(shared)]) == 2  # shard 1 has not run
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and "rerun shard(s) 1/3" in err[0] and "gradient:" in err[0]
    assert not (shared / "results.json").exists()
    assert main(["merge", str(shared), "--status"]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].endswith("units left") and status[1:] == [
        "  shard 0/3: done",
        "  shard 1/3: 2 gradient, 2 transfer",
        "  shard 2/3: done",
    ]
    assert main(run_args(tiny_model, blimp_dir, shared) + ["--shard", "1/3"]) == 0
    assert main(["merge", str(shared)]) == 0
    same_results(tmp_path / "serial", shared)
    merged = json.loads((shared / "results.json").read_text())
    assert set(merged["spaces"]) == {"gradsim", "overlap", "transfer"}
    # each task's gradient and tuning were done once, by the shard that owns the task
    assert len([p for p in (shared / "units" / "transfer").glob("*.json") if not p.name.endswith(".key.json")]) == 5
    # and each shard stored what its units took: merge knows what every space cost
    units = {(g["kind"], g["count"]) for g in merged["execution"]["costs"]["transfer"]["units"]}
    assert units == {("gradient", 5), ("transfer", 5)} and merged["execution"]["costs"]["transfer"]["cost_s"] > 0


def test_merge_and_shard_errors(
    tmp_path: Path, tiny_model: Path, blimp_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["merge", str(tmp_path)]) == 2
    assert "has no run.json" in capsys.readouterr().err
    for bad in ("3/3", "1", "a/b", "-1/2"):
        assert main(run_args(tiny_model, blimp_dir, tmp_path / "x") + ["--shard", bad]) == 2
        assert "--shard" in capsys.readouterr().err
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "plain", "accuracy")) == 0
    assert main(["merge", str(tmp_path / "plain")]) == 2
    assert "not written by `run --shard" in capsys.readouterr().err
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "y") + ["--executor", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_ray_missing_is_one_line(
    monkeypatch, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "r", "gradsim") + ["--executor", "ray"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == ["error: the ray executor needs Ray: pip install 'lingspace-harness[ray]'"]
    assert not (tmp_path / "r").exists()  # refused before any work


class Reverse:
    """A third-party executor: runs each stage's units in reverse order, and records them."""

    name, description = "reverse", "serial, backwards"

    def __init__(self) -> None:
        self.seen: list[list[Unit]] = []

    def execute(self, stages: list[list[Unit]], worker: Any) -> None:
        runner = worker.build()
        for units in stages:
            self.seen.append(list(units))
            for unit in reversed(units):
                runner.run(unit)


def test_an_executor_plugin_runs_the_stages_in_order(
    lingspace_plugin, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    reverse = Reverse()

    class Plugin:
        @hookimpl
        def lingspace_register_executors(self, register):
            register(reverse)

    lingspace_plugin(Plugin(), "reverse-executor")
    assert load_harness().executors.owner("reverse") == "reverse-executor"
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "rev") + ["--executor", "reverse"]) == 0
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "serial")) == 0
    same_results(tmp_path / "serial", tmp_path / "rev")
    stage0, stage1 = reverse.seen
    assert {u.kind for u in stage0} == {"gradient"} and len(stage0) == 5
    assert {(u.kind, u.owner) for u in stage1} == {("transfer", "transfer")} and len(stage1) == 5
    # a rerun finds every unit stored and hands the executor nothing
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "rev") + ["--executor", "reverse"]) == 0
    assert len(reverse.seen) == 2


FLAKY = '''
import os, signal
from lingspace_harness import MetricResult, Unit, hookimpl

class Flaky:
    """A unit that kills its own worker process halfway through, the first time it runs."""
    name, description = "flaky", "a gradient norm per task, computed by units that may die"

    def strategies(self, ctx):
        return ["full"]

    def units(self, ctx):
        store = ctx.units("flaky")
        return [Unit(1, "flaky", t, self.name) for t in ctx.task_names if not store.has(t, ".json")]

    def run_unit(self, ctx, unit):
        norm = float((ctx.gradient("full", unit.name).astype("float64") ** 2).sum() ** 0.5)
        marker = ctx.config.output / f"killed-{unit.name}"
        if unit.name == ctx.task_names[0] and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.units("flaky").save_json(unit.name, {"norm": norm, "pid": os.getpid()})

    def compute(self, ctx):
        store = ctx.units("flaky")
        for t in ctx.task_names:
            if not store.has(t, ".json"):
                self.run_unit(ctx, Unit(1, "flaky", t, self.name))
        return MetricResult(task_fields={t: {"flaky_norm": store.load_json(t)["norm"]} for t in ctx.task_names})

@hookimpl
def lingspace_register_metrics(register):
    register(Flaky())
'''


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray cluster with 2 CPUs whose workers can import a third-party plugin."""
    ray = pytest.importorskip("ray")
    site = tmp_path_factory.mktemp("site")
    (site / "lsh_test_flaky.py").write_text(textwrap.dedent(FLAKY))
    info = site / "lsh_test_flaky-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lsh-test-flaky\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lingspace_harness]\nflaky = lsh_test_flaky\n")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), old]))
    sys.path.insert(0, str(site))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield site
    finally:
        ray.shutdown()
        sys.path.remove(str(site))
        sys.modules.pop("lsh_test_flaky", None)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.mark.integration  # starts a local Ray cluster
def test_ray_with_two_workers_equals_the_serial_run(
    ray_cluster: Path,
    one_thread: None,
    tiny_model: Path,
    blimp_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "serial")) == 0
    monkeypatch.delenv("LINGSPACE_NO_PROGRESS")
    monkeypatch.setenv("LINGSPACE_PROGRESS_INTERVAL", "0")
    capsys.readouterr()
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "ray") + ["--executor", "ray", "--workers", "2"]) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if "units on 2 ray workers" in line]
    assert progress[0].startswith("progress: stage 0 units on 2 ray workers: 1/") and "ETA" in progress[0]
    assert any(line.startswith("progress: stage 0 units on 2 ray workers: done, ") for line in progress)
    same_results(tmp_path / "serial", tmp_path / "ray")
    results = json.loads((tmp_path / "ray" / "results.json").read_text())
    costs = results["execution"].pop("costs")  # the workers stored what each unit took
    assert results["execution"] == {
        "executor": "ray",
        "shard": None,
        "options": {"workers": 2, "worker_cpus": 1.0, "retries": 3},
    }
    assert all(costs[name]["cost_s"] > 0 for name in ("gradsim", "overlap", "transfer"))


@pytest.mark.integration  # starts a local Ray cluster
@pytest.mark.third_party_plugins  # lsh_test_flaky, installed on sys.path
def test_a_killed_ray_worker_is_retried_and_nothing_is_lost(
    ray_cluster: Path, one_thread: None, tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    first = "blimp_anaphor_gender_agreement"
    serial = tmp_path / "serial"
    serial.mkdir()
    (serial / f"killed-{first}").write_text("not in this process")  # the serial run must not kill pytest
    assert main(run_args(tiny_model, blimp_dir, serial, "gradsim,flaky")) == 0
    out = tmp_path / "ray"
    assert main(run_args(tiny_model, blimp_dir, out, "gradsim,flaky") + ["--executor", "ray", "--workers", "2"]) == 0
    killed_pid = int((out / f"killed-{first}").read_text())
    stored = next((out / "units" / "flaky").glob(f"{first}-{'[0-9a-f]' * 16}.json"))
    assert json.loads(stored.read_text())["value"]["pid"] != killed_pid  # done again, by a restarted worker
    assert not list((out / "units").rglob(".*"))  # no partial files left behind
    same_results(serial, out)


def test_split_half_spaces_shard_and_leave_the_main_space_alone(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "plain", "gradsim,overlap")) == 0
    halves = run_args(tiny_model, blimp_dir, tmp_path / "halves", "gradsim,overlap") + ["--split-half"]
    assert main(halves) == 0
    plain, split = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "halves"))
    for metric in ("gradsim", "overlap"):
        assert split["spaces"][metric]["matrix"] == plain["spaces"][metric]["matrix"]
        a, b = split["spaces"][metric]["split_half"]["a"], split["spaces"][metric]["split_half"]["b"]
        assert len(a) == len(b) == 5 and a != b != split["spaces"][metric]["matrix"]
        assert split["spaces"][metric]["split_half"]["n_train"] == [3] * 5  # 6 training pairs, halved
        assert set(split["analysis"]["reliability"][metric]) >= {"r", "r_full"}
    assert "reliability" not in plain["analysis"] or not plain["analysis"]["reliability"]
    # the halves are units too: two shards merged give the same results
    shards = tmp_path / "shards"
    for i in (0, 1):
        assert (
            main(run_args(tiny_model, blimp_dir, shards, "gradsim,overlap") + ["--split-half", "--shard", f"{i}/2"])
            == 0
        )
    assert main(["merge", str(shards)]) == 0
    same_results(tmp_path / "halves", shards)
