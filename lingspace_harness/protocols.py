"""What metrics, strategies, space builders, reporters and commands look like.

Plugins return objects with these attributes from their ``register`` calls. Plain
classes or dataclasses work; nothing needs to inherit from these protocols.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .access import ModelAccess
from .config import RunConfig
from .gradients import ParamLayout
from .models import LoadedModel, ModelLoader
from .pairs import MinimalPair, PairScore
from .registry import Registry
from .results import json_safe
from .tasks import Task, TaskData, TaskSource
from .units import UnitStore

if TYPE_CHECKING:
    import torch


@dataclass
class Space:
    """A task space: ``matrix[i][j]`` relates ``tasks[i]`` to ``tasks[j]``.

    Undefined cells (e.g. the cosine of a zero vector) are NaN (or None), never 0. The metric
    may say why in ``extra["undefined"]`` (a string); ``to_json`` counts them."""

    tasks: list[str]
    matrix: Sequence[Sequence[float | None]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The space for results.json: undefined cells (and undefined numbers in ``extra``)
        as null, and ``"undefined": {"count": cells, "reason": the metric's reason or None}``."""
        n = len(self.tasks)
        if len(self.matrix) != n or any(len(row) != n for row in self.matrix):
            raise ValueError(f"a space over {n} tasks needs an {n}x{n} matrix")
        matrix = np.array(self.matrix, dtype=float).reshape(n, n)
        extra = dict(self.extra)
        reason = extra.pop("undefined", None)
        if reason is not None and not isinstance(reason, str):
            raise ValueError("a space's extra['undefined'] must be a string: why cells are undefined")
        count = int(np.count_nonzero(~np.isfinite(matrix)))
        return {
            "tasks": list(self.tasks),
            "matrix": json_safe(matrix),
            **json_safe(extra),
            "undefined": {"count": count, "reason": (reason or "not given by the metric") if count else None},
        }


@dataclass
class MetricResult:
    """What a metric adds to results.json: per-task fields, a space, or both."""

    task_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    space: Space | None = None


class Registries(Protocol):
    """What the loaded plugins registered, one :class:`lingspace_harness.Registry` per kind
    (``lingspace_harness.Harness`` is one; commands and run contexts get it as ``harness``)."""

    @property
    def tasks(self) -> Registry[Task]: ...
    @property
    def task_sources(self) -> Registry[TaskSource]: ...
    @property
    def model_loaders(self) -> Registry[ModelLoader]: ...
    @property
    def gradient_strategies(self) -> Registry[GradientStrategy]: ...
    @property
    def metrics(self) -> Registry[Metric]: ...
    @property
    def space_builders(self) -> Registry[SpaceBuilder]: ...
    @property
    def hypotheses(self) -> Registry[Hypothesis]: ...
    @property
    def executors(self) -> Registry[Executor]: ...
    @property
    def reporters(self) -> Registry[Reporter]: ...
    @property
    def commands(self) -> Registry[Command]: ...


@runtime_checkable
class RunPlan(Protocol):
    """What a run knows before any data or model loads: its config, the registered plugins,
    their options and the providers of capabilities (what ``strategies(ctx)`` may read)."""

    @property
    def config(self) -> RunConfig: ...
    @property
    def harness(self) -> Registries: ...

    def options(self, plugin: str, kind: str | None = None) -> Any: ...
    def provider(self, capability: str) -> Metric | GradientStrategy: ...


class RunContext(RunPlan, Protocol):
    """What metrics (and their units) see of a run: its data, scores, units, gradients, model
    access and options. ``variant`` is "" for the run's data, or ``half-a``/``half-b``: the
    first/second half of every task's training pairs (the split-half noise ceiling)."""

    @property
    def model(self) -> LoadedModel: ...
    @property
    def data(self) -> Mapping[str, TaskData]: ...
    @property
    def variant(self) -> str: ...
    @property
    def task_names(self) -> list[str]: ...
    @property
    def access(self) -> ModelAccess: ...
    @property
    def gradient_params(self) -> list[tuple[str, torch.nn.Parameter]]: ...
    @property
    def gradient_layout(self) -> ParamLayout: ...

    def needed(self, capability: str) -> bool: ...
    def for_variant(self, variant: str) -> RunContext: ...
    def units(self, kind: str, **settings: object) -> UnitStore: ...
    def gradient(self, strategy: str, task: str) -> np.ndarray: ...
    def scores(self, split: str = "test") -> dict[str, list[PairScore]]: ...
    def score_pairs(
        self, pairs_by_task: Mapping[str, Sequence[MinimalPair]], desc: str = "scoring"
    ) -> dict[str, list[PairScore]]: ...


@runtime_checkable
class Metric(Protocol):
    """A ``--metric``. ``compute`` reads the run (model, task data, cached scores).

    Optional: ``always = True`` (computed in every run), ``strategies(ctx)`` (the gradient
    strategies whose differentials it reads; asked of the ``RunPlan``, before anything loads),
    ``needs``/``provides`` (capabilities: a metric that needs one gets it from a metric or
    strategy that provides it, see ``RunContext.provider``), ``units(ctx)``/``run_unit(ctx,
    unit)`` (its units of work), ``add_arguments(group)`` and ``Options`` (its own options),
    ``check(options, scores_only)`` (called before any data or model loads: raise UserError for
    options this run cannot honour, e.g. with a model that only scores), ``summary(results)``
    (a line for the end of ``run``)."""

    name: str
    description: str

    def compute(self, ctx: RunContext) -> MetricResult: ...


@runtime_checkable
class GradientStrategy(Protocol):
    """Reduces a task's flat gradient differential (float32, in ``layout`` order) to what is
    stored for it: a vector (``kind = "vector"``, with ``layer_slices(layout, options)``
    giving each layer's slices of it) or a sorted index mask (``kind = "mask"``). ``options``
    are the strategy's own (its ``Options``, from its ``add_arguments``); stored units are
    keyed by them. ``provides`` (optional) names capabilities, e.g. ``("mask",)``."""

    name: str
    description: str
    kind: str

    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: Any) -> np.ndarray: ...


@runtime_checkable
class SpaceBuilder(Protocol):
    """Analyses the spaces of a results dict; the return value lands in ``analysis[name]``.
    ``ctx`` (an :class:`lingspace_harness.AnalysisContext`) carries the options (permutations,
    seed) and the hypothesis spaces."""

    name: str
    description: str

    def build(self, results: dict[str, Any], ctx: Any) -> dict[str, Any]: ...


@runtime_checkable
class Hypothesis(Protocol):
    """A hypothesis space: ``matrix(tasks, results)`` is an N x N array of predicted
    similarity between ``tasks`` (e.g. 1 for the same phenomenon, else 0), or None where the
    hypothesis does not apply to them."""

    name: str
    description: str

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> npt.ArrayLike | None: ...


@dataclass(frozen=True)
class Unit:
    """One independent unit of work of a run. Units of a lower ``stage`` all finish before a
    higher stage starts. A stage-1 unit may read its own task's stage-0 units; a unit of stage 2
    or later may read every earlier unit (a ``--shard`` runs those once all shards have finished
    the earlier stages). ``owner`` is the metric whose ``run_unit(ctx, name)`` computes it, or
    ``""`` for the core's own units (a task's gradient differentials); ``kind`` and ``name``
    identify what it stores (two metrics that need the same unit name it alike). ``variant``
    names the data variant it runs on ("" for the run's data, ``half-a``/``half-b`` for the
    split-half noise ceiling); the harness sets it."""

    stage: int
    kind: str
    name: str
    owner: str = ""
    variant: str = ""


@runtime_checkable
class Executor(Protocol):
    """Runs units of work. ``execute(stages, worker)`` gets the run's pending units grouped
    by stage; every unit of a stage must finish before any unit of the next starts. It must
    leave each unit's result in the run's unit cache: ``worker`` (a picklable
    :class:`lingspace_harness.WorkerSpec`) builds, in any process, a worker whose
    ``run(unit)`` computes one unit (a worker that loads other data or another model than the
    driver's is refused). Once it returns, every unit must be stored where the driver reads it,
    else the run fails naming the first one lost; ``worker.verify(units)`` checks a stage early.
    An optional ``add_arguments(group)`` and ``Options`` dataclass add ``run`` options, which
    reach it as ``worker.options``, validated before anything loads (execution settings: they
    are kept out of results.json's ``config``); an optional ``check(config)`` runs before any
    work (e.g. to say that a dependency is missing)."""

    name: str
    description: str

    def execute(self, stages: list[list[Unit]], worker: Any) -> None: ...


@runtime_checkable
class Reporter(Protocol):
    """Writes files from a finished results dict into ``out_dir``; returns their paths."""

    name: str
    description: str

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]: ...


@runtime_checkable
class Command(Protocol):
    """A CLI sub-command. ``run`` returns the exit code; raise UserError for user mistakes."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, harness: Registries) -> int: ...
