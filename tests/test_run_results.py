"""The Python API over a finished run: typed results (``RunResults``, ``SpaceResult``) that
round-trip results.json exactly, ``load(dir)``, labelled matrices, and results.json's JSON Schema."""

from __future__ import annotations

import copy
import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import lingspace_harness
from lingspace_harness import MetricResult, RunResults, Space, SpaceResult, UnknownNameError, UserError, hookimpl, load
from lingspace_harness.cli import main
from lingspace_harness.plugins import LOAD_ENV, register_plugin, unregister_plugin
from lingspace_harness.results import RUN_KEYS, SCHEMA_VERSION, write_results
from lingspace_harness.run_results import SCHEMA_RESOURCE, results_schema
from lingspace_harness.stats import mantel

ROOT = Path(__file__).resolve().parents[1]
TASKS = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement,blimp_passive_2,blimp_npi_present_1"


class Holes:
    """A metric whose space is undefined between its first two tasks (as a real metric's can
    be: a zero gradient, an untuned source), with an undefined number among its own keys."""

    name, description = "holes", "an identity space, undefined between the first two tasks"

    def strategies(self, ctx):  # reads gradients (none): --split-half computes its halves too
        return []

    def compute(self, ctx):
        n = len(ctx.task_names)
        matrix = np.eye(n)
        matrix[0, 1] = matrix[1, 0] = np.nan
        extra = {"form": "linear", "row_means": [np.nan] + [1.0] * (n - 1), "undefined": "the first two never meet"}
        return MetricResult(space=Space(ctx.task_names, matrix, extra))


class HolesPlugin:
    @hookimpl
    def lingspace_register_metrics(self, register):
        register(Holes())


@pytest.fixture(scope="module")
def run_dir(tiny_model_factory, blimp_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tiny-model run: gradsim and holes (null cells), with their split halves."""
    out = tmp_path_factory.mktemp("run") / "out"
    args = ["run", "--model", str(tiny_model_factory("gpt2")), "--tasks", TASKS, "--data-dir", str(blimp_dir)]
    args += ["--limit", "12", "--metric", "gradsim,holes", "--split-half", "--output", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOAD_ENV, "")  # built-ins only (the function-scoped autouse fixture comes later)
        patch.setenv("LINGSPACE_NO_PROGRESS", "1")
        register_plugin(HolesPlugin(), "holes-plugin")
        try:
            assert main(args) == 0
        finally:
            unregister_plugin("holes-plugin")
    yield out


def test_a_runs_results_round_trip_exactly_null_cells_included(run_dir: Path) -> None:
    text = (run_dir / "results.json").read_text()
    raw = json.loads(text)
    holes = raw["spaces"]["holes"]
    assert holes["matrix"][0][1] is None and holes["split_half"]["a"][1][0] is None and holes["row_means"][0] is None
    run = RunResults.from_json(copy.deepcopy(raw))
    assert run.to_json() == raw
    assert json.dumps(run.to_json(), indent=2, allow_nan=False) + "\n" == text  # the key order too
    space = run.space("holes")
    assert space.form == "linear" and run.space("gradsim").form is None
    assert np.isnan(space.matrix[0, 1]) and np.isnan(space.matrix[1, 0]) and np.isnan(space.split_half.b[0, 1])
    assert np.count_nonzero(np.isnan(space.matrix)) == 2 == space.extra["undefined"]["count"]
    assert space.split_half.extra["n_train"] == raw["spaces"]["holes"]["split_half"]["n_train"]
    assert run.version == SCHEMA_VERSION and run.model == raw["model"] and run.fingerprints == raw["fingerprints"]


def test_load_gives_labelled_matrices(run_dir: Path) -> None:
    raw = json.loads((run_dir / "results.json").read_text())
    run = lingspace_harness.load(run_dir)
    assert run.to_json() == raw and run == RunResults.from_json(raw)
    tasks, matrix = run.space("holes").labelled()
    assert tasks == raw["spaces"]["holes"]["tasks"] == list(run.tasks)
    assert np.isnan(matrix[0, 1]) and matrix[0, 0] == 1.0
    matrix[0, 0] = 5.0  # a copy
    assert run.space("holes").matrix[0, 0] == 1.0
    pytest.importorskip("pandas")
    frame = run.space("gradsim").frame()
    assert (frame.index.name, frame.columns.name) == ("source", "target")
    assert list(frame.index) == list(frame.columns) == tasks
    assert frame.loc[tasks[1], tasks[2]] == raw["spaces"]["gradsim"]["matrix"][1][2]
    assert np.isnan(run.space("holes").frame().loc[tasks[0], tasks[1]])
    fields = run.task_frame()
    assert fields.index.name == "task" and list(fields.index) == tasks
    assert fields.loc[tasks[0], "n_test"] == raw["tasks"][tasks[0]]["n_test"] and "vocabulary" not in fields


def test_the_python_api_page_recipe(run_dir: Path) -> None:
    """docs/user-guide/python-api.md's hypothesis test: a space against same-phenomenon tasks."""
    run = load(run_dir)
    space = run.space("gradsim")
    phenomenon = [run.tasks[t]["phenomenon"] for t in space.tasks]
    same = np.array([[float(a == b) for b in phenomenon] for a in phenomenon])
    result = mantel(space.matrix, same, permutations=99, seed=0)
    assert result["n_tasks"] == 4 and result["n_permutations"] == 99


def test_the_accessors_the_builtin_readers_use(run_dir: Path) -> None:
    """Each task's field (a default where a task has none), a plugin's recorded options by kind,
    and a space's matrix over some of its tasks (undefined cells NaN)."""
    raw = json.loads((run_dir / "results.json").read_text())
    run = load(run_dir)
    tasks = list(raw["tasks"])
    assert run.task_values("n_test") == {t: raw["tasks"][t]["n_test"] for t in tasks}
    assert list(run.task_values("phenomenon")) == tasks
    assert run.task_values("no such field") == dict.fromkeys(tasks) and run.task_values("x", 0) == dict.fromkeys(
        tasks, 0
    )
    assert run.options("metric", "accuracy") == raw["config"]["options"]["metric"]["accuracy"]
    assert run.options("metric", "holes") == {} and run.options("reporter", "accuracy") == {}
    run.config["options"] = {"metric": {"accuracy": {"normalise": "tokens"}}, "gradsim": {"flat": 1}}
    assert run.options("metric", "accuracy") == {"normalise": "tokens"}
    assert run.options("metric", "gradsim") == {"flat": 1}  # recorded before options were kept by kind
    holes = run.space("holes")
    picked = holes.submatrix([holes.tasks[1], holes.tasks[0], holes.tasks[3]])
    assert picked.shape == (3, 3) and np.isnan(picked[0, 1]) and picked[2, 2] == holes.matrix[3, 3]
    picked[2, 2] = 5.0  # a new array
    assert holes.matrix[3, 3] == 1.0


def test_an_unknown_space_names_those_there_are(run_dir: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'gradsim'"):
        load(run_dir).space("gradsm")
    with pytest.raises(UnknownNameError, match="it has gradsim, holes"):
        load(run_dir).space("transfer")


def test_frame_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    space = SpaceResult("s", ["a", "b"], np.array([[1.0, np.nan], [0.5, 1.0]]))
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails
    with pytest.raises(UserError, match="pip install pandas"):
        space.frame()
    tasks, matrix = space.labelled()
    assert tasks == ["a", "b"] and np.isnan(matrix[0, 1])


def test_results_built_in_python_write_and_load_back(tmp_path: Path) -> None:
    space = SpaceResult("s", ["a", "b"], np.array([[1.0, np.nan], [0.5, 1.0]]), form="linear", extra={"k": 0.1})
    run = RunResults(version=SCHEMA_VERSION, config={"seed": 0}, tasks={"a": {}, "b": {}}, spaces={"s": space})
    data = run.to_json()
    assert data["spaces"]["s"] == {"tasks": ["a", "b"], "matrix": [[1.0, None], [0.5, 1.0]], "k": 0.1, "form": "linear"}
    jsonschema.validate(data, results_schema())
    write_results(tmp_path, data)
    assert load(tmp_path) == run


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"version": 1, "config": {}, "tasks": {}}, "it has no spaces"),
        ({"version": 1, "config": {}, "tasks": {}, "spaces": {"s": [1]}}, "spaces.s is not a space"),
        ({"version": 1, "config": {}, "tasks": {}, "spaces": {"s": {"tasks": ["a"], "matrix": [[1, 2]]}}}, "1x1"),
        ({"version": 1, "config": {}, "tasks": {}, "spaces": {"s": {"tasks": ["a"], "matrix": [["x"]]}}}, "'x'"),
    ],
)
def test_what_is_not_a_run_is_a_one_line_error(tmp_path: Path, results: dict, message: str) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match=message):
        load(tmp_path)
    with pytest.raises(UserError, match="no results.json"):
        load(tmp_path / "elsewhere")


def test_the_schema_is_versioned_with_the_results() -> None:
    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f":{SCHEMA_VERSION}") and schema["properties"]["version"]["const"] == SCHEMA_VERSION
    assert schema["required"] == list(RUN_KEYS)  # what a reader refuses a file without
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert (ROOT / "lingspace_harness" / SCHEMA_RESOURCE).is_file()  # shipped: a package with its data
    assert "lingspace_harness.schema" in setuptools["packages"]
    assert setuptools["package-data"]["lingspace_harness.schema"] == ["*.json"]


def test_a_runs_results_follow_the_schema_and_broken_ones_do_not(run_dir: Path) -> None:
    raw = json.loads((run_dir / "results.json").read_text())
    validator = jsonschema.Draft202012Validator(results_schema())
    validator.validate(raw)
    breakages = {
        "a cell that is text": lambda r: r["spaces"]["holes"]["matrix"][0].__setitem__(0, "1.0"),
        "a half's cell that is text": lambda r: r["spaces"]["gradsim"]["split_half"]["a"][0].__setitem__(0, "x"),
        "no spaces": lambda r: r.pop("spaces"),
        "another version": lambda r: r.__setitem__("version", SCHEMA_VERSION + 1),
        "a space without a matrix": lambda r: r["spaces"]["gradsim"].pop("matrix"),
        "a task count that is text": lambda r: next(iter(r["tasks"].values())).__setitem__("n_test", "12"),
    }
    for what, breaks in breakages.items():
        broken = copy.deepcopy(raw)
        breaks(broken)
        assert not validator.is_valid(broken), what
