"""Executors cannot lose work: units their workers store out of the driver's sight, and workers
that load other data or another model, fail the run in one line; bad executor options are
refused before anything loads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lingspace_harness_plugins.executors import Ray, RayOptions, failure
from test_executors import ray_cluster, run_args  # noqa: F401 (a fixture)

from lingspace_harness import Unit, WorkerSpec, hookimpl
from lingspace_harness.cli import main


class Elsewhere:
    """Runs every unit in a fresh worker built from ``change(config)``, e.g. another --output."""

    description = "units in a worker with another config"

    def __init__(self, name: str, change: Callable[[Any], Any]) -> None:
        self.name, self.change = name, change

    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        runner = replace(worker, config=self.change(worker.config), local=None).build()
        for units in stages:
            for unit in units:
                runner.run(unit)


class Dropper:
    """Runs stage 0 in the driver's process and silently drops every later stage."""

    name, description = "dropper", "loses stage 1"

    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        runner = worker.build()
        for unit in stages[0]:
            runner.run(unit)


@pytest.fixture
def executor(lingspace_plugin) -> Callable[[Any], None]:
    """``executor(obj)`` registers ``obj`` as an executor plugin for this test."""

    def register(obj: Any) -> None:
        class Plugin:
            @hookimpl
            def lingspace_register_executors(self, register):
                register(obj)

        lingspace_plugin(Plugin(), f"{obj.name}-executor")

    return register


def error_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def other_data(blimp_dir: Path, to: Path) -> Path:
    """The run's BLiMP files, with one paradigm's good sentences changed."""
    to.mkdir()
    for pattern in ("anaphor_*.jsonl", "passive_*.jsonl", "npi_present_1.jsonl"):
        for path in blimp_dir.glob(pattern):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if path.name == "anaphor_gender_agreement.jsonl":
                rows = [{**r, "sentence_good": r["sentence_good"] + " indeed"} for r in rows]
            (to / path.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return to


def test_units_stored_where_the_driver_cannot_see_them_fail_the_run(
    executor, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    executor(Elsewhere("elsewhere", lambda c: replace(c, output=tmp_path / "private")))
    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(run_args(tiny_model, blimp_dir, out) + ["--executor", "elsewhere"]) == 2
    assert time.perf_counter() - start < 60
    (line,) = error_lines(capsys)
    assert line.startswith("error: the elsewhere executor finished stage 0, but unit gradient:blimp_anaphor_")
    assert "is not stored in" in line and "--output" in line and "other data or another model" in line
    assert list((tmp_path / "private" / "units").rglob("*.npy"))  # the worker did the work
    assert not (out / "results.json").exists()  # and the driver did not redo it


def test_a_dropped_stage_is_named(
    executor, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    executor(Dropper())
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "run") + ["--executor", "dropper"]) == 2
    (line,) = error_lines(capsys)
    assert "the dropper executor finished stage 1, but unit transfer:blimp_anaphor_gender_agreement " in line


def test_a_worker_with_other_data_is_refused(
    executor, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = other_data(blimp_dir, tmp_path / "data")
    executor(Elsewhere("otherdata", lambda c: replace(c, data_dir=data)))
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "run", "gradsim") + ["--executor", "otherdata"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("error: a worker loaded other data than the driver (fingerprint ")
    assert "task blimp_anaphor_gender_agreement differs" in line and "--data-dir" in line


def test_a_worker_with_another_model_is_refused(
    executor, tiny_model_factory, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tiny_model_factory("llama")
    executor(Elsewhere("othermodel", lambda c: replace(c, model=str(other))))
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "run", "gradsim") + ["--executor", "othermodel"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("error: a worker loaded another model than the driver (fingerprint params:")


class RayWithOtherWorkers:
    """The ray executor, with two workers built from ``change(config)``."""

    description = "ray, its workers configured otherwise"

    def __init__(self, name: str, change: Callable[[Any], Any]) -> None:
        self.name, self.change = name, change

    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        Ray().execute(stages, replace(worker, config=self.change(worker.config), options=RayOptions(workers=2)))


@pytest.mark.integration  # starts a local Ray cluster
@pytest.mark.usefixtures("ray_cluster")
def test_ray_workers_with_another_output_or_other_data_fail_in_one_line(
    executor, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    executor(RayWithOtherWorkers("ray-elsewhere", lambda c: replace(c, output=tmp_path / "private")))
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "a") + ["--executor", "ray-elsewhere"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("error: the ray-elsewhere executor finished stage 0, but unit gradient:")
    assert not list((tmp_path / "private" / "units").glob("transfer/*"))  # stage 1 never started
    data = other_data(blimp_dir, tmp_path / "data")
    executor(RayWithOtherWorkers("ray-otherdata", lambda c: replace(c, data_dir=data)))
    assert main(run_args(tiny_model, blimp_dir, tmp_path / "b") + ["--executor", "ray-otherdata"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("error: ray: unit gradient:blimp_anaphor_")
    assert "failed: a worker loaded other data than the driver (fingerprint " in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "ray: --workers must be at least 1, got 0"),
        (["--worker-cpus", "0"], "ray: --worker-cpus must be more than 0, got 0.0"),
        (["--worker-gpus", "-1"], "ray: --worker-gpus must be 0 or more, got -1.0"),
        (["--retries", "-1"], "ray: --retries must be 0 or more (unbounded retries are not offered), got -1"),
    ],
)
def test_bad_ray_options_are_refused_before_anything_loads(
    flags: list[str], message: str, tiny_model: Path, blimp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "r"
    assert main(run_args(tiny_model, blimp_dir, out, "gradsim") + ["--executor", "ray", *flags]) == 2
    assert error_lines(capsys) == [f"error: {message}"]
    assert not out.exists()


def test_ray_options_defaults_and_a_workers_own_error() -> None:
    assert RayOptions() == RayOptions(None, None, 1.0, None, 3)
    assert RayOptions(workers=1, worker_cpus=0.5, worker_gpus=0, retries=0).worker_gpus == 0
    assert Ray.Options is RayOptions

    class Wrapped(Exception):  # a Ray task error carries the worker's exception as ``cause``
        cause = __import__("lingspace_harness").UserError("a worker loaded other data than the driver")

    assert failure(Wrapped("Traceback ...\nUserError: ...")) == "a worker loaded other data than the driver"
    assert failure(RuntimeError("Traceback ...\n  line\nValueError: boom")) == "ValueError: boom"
