"""A run's results.json as dataclasses: :class:`RunResults` and its spaces, :class:`SpaceResult`
(read a run directory with :func:`load`), and results.json's JSON Schema (:func:`results_schema`).

``RunResults.from_json(x).to_json() == x`` for a run's results.json: the keys the dataclasses do
not name are kept (``extra``), and so is their order. Undefined cells, null in JSON, are NaN in
the matrices, never 0.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UnknownNameError, UserError
from .options import recorded
from .results import RESULTS_FILE, check_results, json_safe, read_results

if TYPE_CHECKING:
    import pandas as pd

#: The helpers this module offers beside ``load``, ``RunResults`` and ``SpaceResult`` (which
#: ``lingspace_harness`` exports).
__all__ = ["SplitHalf", "results_schema"]

#: results.json's JSON Schema, package data of ``lingspace_harness``.
SCHEMA_RESOURCE = "schema/results.schema.json"


def results_schema() -> dict[str, Any]:
    """results.json's JSON Schema (draft 2020-12), as shipped with the package; its ``$id``
    and its ``version`` constant are results.json's ``version``."""
    text = resources.files("lingspace_harness").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _cell(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise TypeError(f"{value!r} is not a number")


def as_matrix(value: Any, n: int, where: str) -> np.ndarray:
    """``value`` (``n`` rows of ``n`` numbers, null or NaN where undefined) as an ``n`` x ``n``
    float array; anything else is a one-line :class:`UserError` naming ``where``."""
    problem = f"{where} is not a {n}x{n} matrix of numbers and nulls"
    if isinstance(value, np.ndarray):
        if value.shape != (n, n):
            raise UserError(f"{problem} (its shape is {value.shape})")
        return value.astype(float)
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise UserError(problem)
    try:
        rows = [[_cell(v) for v in row] for row in value if isinstance(row, (list, tuple)) and len(row) == n]
    except TypeError as exc:
        raise UserError(f"{problem} ({exc})") from exc
    if len(rows) != n:
        raise UserError(problem)
    return np.array(rows, dtype=float).reshape(n, n)


def _cells(matrix: np.ndarray) -> list[list[float | None]]:
    """A matrix for results.json: undefined (NaN) cells as null."""
    cells: list[list[float | None]] = json_safe(np.asarray(matrix, dtype=float))
    return cells


def _ordered(out: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """``out`` with the keys in ``order`` first, in that order (the order read from JSON)."""
    return {**{k: out[k] for k in order if k in out}, **{k: v for k, v in out.items() if k not in order}}


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise UserError("a DataFrame needs pandas: pip install pandas (labelled() needs nothing)") from exc
    return pandas


@dataclass(eq=False)
class SplitHalf:
    """A space computed on each half of every task's training pairs (``--split-half``); the
    rest of results.json's ``split_half`` (``n_train``) is in ``extra``."""

    a: np.ndarray
    b: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, n: int, where: str) -> SplitHalf:
        """A space's ``split_half`` (its halves ``a`` and ``b``, null cells as NaN)."""
        if not isinstance(data, dict) or "a" not in data or "b" not in data:
            raise UserError(f"{where} is not an object with the halves a and b")
        rest = {k: v for k, v in data.items() if k not in ("a", "b")}
        return cls(as_matrix(data["a"], n, f"{where}.a"), as_matrix(data["b"], n, f"{where}.b"), rest)

    def to_json(self) -> dict[str, Any]:
        """``split_half`` for results.json (NaN cells as null)."""
        return {"a": _cells(self.a), "b": _cells(self.b), **self.extra}

    def __eq__(self, other: object) -> bool:
        """Equal halves and extras; NaN cells equal NaN cells."""
        return isinstance(other, SplitHalf) and self.to_json() == other.to_json()


@dataclass(eq=False)
class SpaceResult:
    """One space of a run: ``matrix[i][j]`` relates ``tasks[i]`` (the source) to ``tasks[j]``
    (the target), a float array with NaN where undefined. ``form`` is the space's form where
    it records one (``linear``, ``rescored``), ``split_half`` its halves (``--split-half``),
    and ``extra`` every other key of the space in results.json (``undefined``, the metric's own)."""

    name: str
    tasks: list[str]
    matrix: np.ndarray
    form: str | None = None
    split_half: SplitHalf | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _order: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    @classmethod
    def from_json(cls, name: str, data: Any) -> SpaceResult:
        """The space ``name`` from results.json's ``spaces[name]`` (null or NaN cells as NaN)."""
        where = f"spaces.{name}"
        if not isinstance(data, dict) or "tasks" not in data or "matrix" not in data:
            raise UserError(f"{where} is not a space: an object with tasks and matrix")
        tasks = data["tasks"]
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise UserError(f"{where}.tasks is not a list of task names")
        form = data.get("form") if isinstance(data.get("form"), str) else None
        halves = data.get("split_half")
        split_half = SplitHalf.from_json(halves, len(tasks), f"{where}.split_half") if halves is not None else None
        named = (
            {"tasks", "matrix"}
            | ({"form"} if form is not None else set())
            | ({"split_half"} if split_half is not None else set())
        )
        extra = {k: v for k, v in data.items() if k not in named}
        space = cls(
            name, list(tasks), as_matrix(data["matrix"], len(tasks), f"{where}.matrix"), form, split_half, extra
        )
        space._order = tuple(data)
        return space

    def to_json(self) -> dict[str, Any]:
        """The space for results.json's ``spaces[name]`` (NaN cells as null)."""
        out: dict[str, Any] = {"tasks": list(self.tasks), "matrix": _cells(self.matrix), **self.extra}
        if self.form is not None:
            out["form"] = self.form
        if self.split_half is not None:
            out["split_half"] = self.split_half.to_json()
        return _ordered(out, self._order)

    def __eq__(self, other: object) -> bool:
        """The same name and the same JSON (NaN cells equal NaN cells, unlike numpy's ``==``)."""
        return isinstance(other, SpaceResult) and (self.name, self.to_json()) == (other.name, other.to_json())

    def submatrix(self, tasks: list[str]) -> np.ndarray:
        """The matrix over ``tasks`` (some of the space's, in that order): a new float array,
        rows sources and columns targets, NaN where undefined."""
        index = {t: i for i, t in enumerate(self.tasks)}
        idx = [index[t] for t in tasks]
        return np.asarray(self.matrix, dtype=float)[np.ix_(idx, idx)]

    def labelled(self) -> tuple[list[str], np.ndarray]:
        """``(tasks, matrix)``: the task names and a copy of the matrix (rows are sources,
        columns targets; NaN where undefined). Needs no pandas."""
        return list(self.tasks), self.matrix.copy()

    def frame(self) -> pd.DataFrame:
        """The matrix as a pandas DataFrame labelled by task: the index (``source``) is the row
        task, the columns (``target``) the column task; NaN where undefined. Needs pandas."""
        pandas = _pandas()
        return pandas.DataFrame(
            self.matrix.copy(),
            index=pandas.Index(self.tasks, name="source"),
            columns=pandas.Index(self.tasks, name="target"),
        )


#: results.json's keys that :class:`RunResults` names, beside ``spaces``: required ones first.
_RUN_FIELDS = ("version", "config", "tasks", "execution", "model", "analysis", "fingerprints")


@dataclass
class RunResults:
    """A run's results.json: ``version`` (the schema's), ``config`` (the run-level options),
    ``tasks`` (per task: labels, counts, vocabulary and each metric's fields, e.g. its accuracy),
    ``spaces`` (one :class:`SpaceResult` per metric with a space), and, where the file has
    them, ``execution``, ``model``, ``analysis`` and ``fingerprints``; ``extra`` holds any other
    top-level key. results.md in the user guide documents the keys."""

    version: int
    config: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    spaces: dict[str, SpaceResult]
    execution: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    fingerprints: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _order: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any, where: str | Path = RESULTS_FILE) -> RunResults:
        """A run's results (a parsed results.json; ``where`` names it in errors). Its nested
        objects are shared, not copied. Something that is not a run's results is a one-line
        :class:`UserError`."""
        check_results(data, Path(where))
        spaces = {name: SpaceResult.from_json(name, space) for name, space in data["spaces"].items()}
        named = {k: data[k] for k in _RUN_FIELDS if k in data}
        extra = {k: v for k, v in data.items() if k not in _RUN_FIELDS and k != "spaces"}
        run = cls(spaces=spaces, extra=extra, **named)
        run._order = tuple(data)
        return run

    def to_json(self) -> dict[str, Any]:
        """The run as results.json holds it (NaN cells as null)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _RUN_FIELDS if getattr(self, k) is not None}
        out["spaces"] = {name: space.to_json() for name, space in self.spaces.items()}
        return _ordered({**out, **self.extra}, self._order)

    def space(self, name: str) -> SpaceResult:
        """The space ``name``; an unknown one is an :class:`UnknownNameError` naming those there are."""
        if name in self.spaces:
            return self.spaces[name]
        close = difflib.get_close_matches(name, list(self.spaces), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(map(repr, close))}?" if close else f"it has {', '.join(self.spaces) or 'none'}"
        )
        raise UnknownNameError(f"no space {name!r} in this run; {hint}")

    def task_values(self, key: str, default: Any = None) -> dict[str, Any]:
        """Task -> its ``key`` in ``tasks`` (a label such as ``phenomenon``, a count such as
        ``n_test``, a metric's field such as ``accuracy``), ``default`` where a task has none; in
        the tasks' order."""
        return {t: f.get(key, default) if isinstance(f, dict) else default for t, f in self.tasks.items()}

    def options(self, kind: str, name: str) -> dict[str, Any]:
        """The options the run recorded for the plugin ``name`` of ``kind`` (``config.options``;
        :func:`lingspace_harness.options.recorded`), {} where none are recorded."""
        options = self.config.get("options")
        return recorded(options if isinstance(options, dict) else {}, kind, name)

    def task_frame(self) -> pd.DataFrame:
        """A pandas DataFrame of the tasks (index ``task``) and their fields with one value
        each (labels, counts, each metric's numbers; lists such as ``vocabulary`` are left out)."""
        pandas = _pandas()
        rows = {t: {k: v for k, v in f.items() if not isinstance(v, (list, dict))} for t, f in self.tasks.items()}
        frame = pandas.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "task"
        return frame


def load(out_dir: str | Path) -> RunResults:
    """A run's results, from its ``--output`` directory (its results.json); a missing or
    unreadable file, or one that is not a run's, is a one-line :class:`UserError`."""
    return RunResults.from_json(read_results(Path(out_dir)), Path(out_dir) / RESULTS_FILE)
