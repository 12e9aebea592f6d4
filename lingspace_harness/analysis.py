"""Analysis of a finished run: hypothesis spaces and running space builders.

``analyse(harness, results, options)`` runs each selected :class:`SpaceBuilder` as
``build(results, ctx)``; its output goes to ``results["analysis"][name]``. The
:class:`AnalysisContext` gives builders the options and the hypothesis spaces: every
registered :class:`Hypothesis` that applies, plus the user's files (``hypothesis_from_file``).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .capabilities import Configurable, HasOptions
from .errors import DataError, PluginError, UserError
from .options import plugin_options
from .protocols import Hypothesis, Registries

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["analyse", "hypothesis_from_file"]


@dataclass
class AnalysisOptions:
    """Settings for ``analyse``. ``builders=None`` runs every registered space builder.
    ``plugins``: each space builder's own options (its ``Options``; see ``HasOptions``), which a
    builder reads as ``ctx.options(self.name)``; one left out gets its defaults."""

    permutations: int = 10000
    bootstraps: int = 1000
    seed: int = 0
    hypothesis_files: list[Path] = field(default_factory=list)
    builders: list[str] | None = None
    plugins: dict[str, Any] = field(default_factory=dict)

    def __call__(self, builder: str) -> Any:
        """A space builder's own options (``ctx.options(name)``, as every kind reads its options)."""
        try:
            return self.plugins[builder]
        except KeyError as exc:
            raise UserError(f"space builder {builder!r} has no options of its own") from exc


class FileHypothesis:
    """A hypothesis read from a file: a similarity matrix over named tasks, or a grouping
    (1 within a group, 0 between). Tasks the file does not name get missing (NaN) rows, so
    tests restrict to the tasks it covers; it does not apply (None) to fewer than 2 of them."""

    def __init__(self, name: str, path: Path, tasks: list[str], matrix: np.ndarray) -> None:
        self.name = name
        self.description = f"from {path}"
        self.path = path
        self._index = {t: i for i, t in enumerate(tasks)}
        self._matrix = matrix

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> np.ndarray | None:
        idx = np.array([self._index.get(t, -1) for t in tasks])
        if np.count_nonzero(idx >= 0) < 2:
            return None
        out = self._matrix[np.ix_(np.maximum(idx, 0), np.maximum(idx, 0))].copy()
        out[idx < 0, :] = np.nan
        out[:, idx < 0] = np.nan
        return out


def _grouping(groups: dict[str, Any], bad: Any) -> tuple[list[str], np.ndarray]:
    if not groups:
        bad("no tasks")
    for task, group in groups.items():
        if not task or group is None or str(group) == "":
            bad(f"task {task!r} has no group")
    tasks = list(groups)
    labels = [str(groups[t]) for t in tasks]
    return tasks, np.array([[float(a == b) for b in labels] for a in labels])


def _value(cell: Any, bad: Any, where: str) -> float:
    if cell is None or (isinstance(cell, str) and cell.strip().lower() in ("", "na", "nan")):
        return math.nan
    if isinstance(cell, bool):
        bad(f"{where}: {cell!r} is not a number")
    try:
        value = float(cell)
    except (TypeError, ValueError):
        bad(f"{where}: {cell!r} is not a number")
    if math.isinf(value):
        bad(f"{where}: infinite value")
    return value


def _matrix(tasks: list[Any], rows: list[Any], bad: Any) -> tuple[list[str], np.ndarray]:
    if not tasks:
        bad("no tasks")
    if not all(isinstance(t, str) and t for t in tasks):
        bad("task names must be non-empty strings")
    if len(set(tasks)) != len(tasks):
        bad("a task is named twice")
    if not isinstance(rows, list) or len(rows) != len(tasks):
        bad(f"the matrix needs {len(tasks)} rows, one per task")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(tasks):
            bad(f"row {i + 1} ({tasks[i]}) needs {len(tasks)} values")
    matrix = np.array([[_value(v, bad, f"row {i + 1} ({tasks[i]})") for v in row] for i, row in enumerate(rows)])
    return tasks, matrix


def _read_csv(path: Path, bad: Any) -> tuple[list[str], np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        table = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not table:
        bad("the file is empty")
    header = [cell.strip() for cell in table[0]]
    body = [[cell.strip() for cell in row] for row in table[1:]]
    if [h.lower() for h in header] == ["task", "group"]:
        groups: dict[str, str] = {}
        for i, row in enumerate(body, start=2):
            if len(row) != 2:
                bad(f"line {i}: expected 2 columns (task,group), got {len(row)}")
            if row[0] in groups:
                bad(f"line {i}: task {row[0]!r} appears twice")
            groups[row[0]] = row[1]
        return _grouping(groups, bad)
    tasks = header[1:]
    names = [row[0] if row else "" for row in body]
    if names != tasks:
        if sorted(names) != sorted(tasks):
            bad(
                "the first column must name the same tasks as the header row "
                "(or use the header task,group for a grouping)"
            )
        order = [names.index(t) for t in tasks]
        body = [body[i] for i in order]
    return _matrix(tasks, [row[1:] for row in body], bad)


def _read_json(path: Path, bad: Any) -> tuple[list[str], np.ndarray]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        bad(f"invalid JSON ({exc})")
    if isinstance(data, dict) and isinstance(data.get("groups"), dict):
        return _grouping(data["groups"], bad)
    if isinstance(data, dict) and isinstance(data.get("tasks"), list) and "matrix" in data:
        return _matrix(data["tasks"], data["matrix"], bad)
    bad('expected {"tasks": [...], "matrix": [[...]]} or {"groups": {task: group}}')
    raise AssertionError  # unreachable: bad() raises


def hypothesis_from_file(path: Path | str) -> Hypothesis:
    """A hypothesis from a CSV or JSON file, named after the file's stem.

    CSV: a matrix (header row of task names after one ignored cell, then one row per task:
    its name and values) or a grouping (header ``task,group``, then one row per task).
    JSON: ``{"tasks": [...], "matrix": [[...]]}`` or ``{"groups": {task: group}}``.
    Empty, ``NA`` or null entries are missing. Problems raise a one-line DataError.
    """
    path = Path(path)

    def bad(problem: str) -> None:
        raise DataError(f"hypothesis file {path}: {problem}")

    if not path.is_file():
        bad("not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        bad("expected a .csv or .json file")
    try:
        tasks, matrix = (_read_csv if suffix == ".csv" else _read_json)(path, bad)
    except UnicodeDecodeError:
        bad("not UTF-8 text")
    return FileHypothesis(path.stem, path, tasks, matrix)


@dataclass
class AnalysisContext:
    """What a space builder gets besides results: the options and the hypothesis spaces."""

    options: AnalysisOptions
    harness: Registries | None = None
    _files: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        taken = set(self.harness.hypotheses.names()) if self.harness is not None else set()
        for path in self.options.hypothesis_files:
            hyp = hypothesis_from_file(path)
            if hyp.name in taken:
                raise UserError(f"hypothesis file {path}: the name {hyp.name!r} is taken; rename the file")
            taken.add(hyp.name)
            self._files.append(hyp)

    def hypotheses(self, tasks: list[str], results: dict[str, Any]) -> dict[str, np.ndarray]:
        """Name -> N x N float array (NaN where missing) for every hypothesis that applies."""
        registered = list(self.harness.hypotheses) if self.harness is not None else []
        out = {}
        for hyp in registered + self._files:
            matrix = hyp.matrix(list(tasks), results)
            if matrix is None:
                continue
            try:
                matrix = np.array(matrix, dtype=float)
            except (TypeError, ValueError):
                matrix = None
            if matrix is None or matrix.shape != (len(tasks), len(tasks)):
                owner = (
                    f" (plugin {self.harness.hypotheses.owner(hyp.name)!r})"
                    if self.harness is not None and hyp.name in self.harness.hypotheses
                    else ""
                )
                raise PluginError(
                    f"hypothesis {hyp.name!r}{owner} did not return a {len(tasks)}x{len(tasks)} numeric matrix"
                )
            matrix[~np.isfinite(matrix)] = np.nan
            out[hyp.name] = matrix
        return out


def analyse(harness: Registries, results: dict[str, Any], options: AnalysisOptions | None = None) -> dict[str, Any]:
    """Run the selected space builders on ``results``; returns {builder name: output}."""
    options = options or AnalysisOptions()
    registry = harness.space_builders
    builders = [registry.get(name) for name in options.builders] if options.builders is not None else list(registry)
    defaults = {
        b.name: plugin_options(b, {}, options.seed)
        for b in builders
        if b.name not in options.plugins and isinstance(b, (Configurable, HasOptions))
    }
    ctx = AnalysisContext(replace(options, plugins={**options.plugins, **defaults}), harness)
    out = {}
    for builder in builders:
        output = builder.build(results, ctx)
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"space builder {builder.name!r} (plugin {registry.owner(builder.name)!r}) "
                f"returned what results.json cannot hold: {exc}"
            ) from exc
        out[builder.name] = output
    return out
