"""Optional base classes, one per plugin kind: subclass one instead of writing every member.

Nothing has to inherit from these: the harness checks plugin objects against the protocols
(:mod:`lingspace_harness.protocols`) by their members alone. A base gives the required
members precise signatures, so that a type checker holds a subclass to them, makes its
required methods abstract (a subclass that misses one cannot be instantiated), and gives
defaults for the members whose default changes nothing: ``description = ""`` and, per kind,
the optional members that are off when they hold their default (``always = False``,
``needs = ()``, ``scores_only = False``, a ``check`` that accepts everything, ...).

A base leaves out every optional member whose mere presence turns a capability on (the core
asks ``isinstance(obj, protocol)``, see :mod:`lingspace_harness.capabilities`): own ``run``
options (``add_arguments(group)`` and ``Options``), a metric's ``strategies(ctx)`` and its
``units(ctx)``/``run_unit(ctx, unit)``, a strategy's ``layer_slices`` and ``reduce_tensor``.
A subclass adds them itself, where it has them; each base's docstring lists its kind's.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .analysis import AnalysisContext
from .config import RunConfig
from .execution import WorkerSpec
from .gradients import ParamLayout
from .models import LoadedModel, ModelOptions
from .protocols import MetricResult, Registries, RunContext, Unit
from .tasks import DataOptions, Task

if TYPE_CHECKING:
    from .models import ModelLoader
    from .protocols import Command, Executor, GradientStrategy, Hypothesis, Metric, Reporter, SpaceBuilder
    from .tasks import TaskSource


class TaskSourceBase(ABC):
    """A :class:`lingspace_harness.TaskSource`: set ``name``; write ``claims`` and ``resolve``.
    Default: ``description = ""``. It has no optional members."""

    name: str
    description: str = ""

    @abstractmethod
    def claims(self, spec: str) -> bool:
        """Whether a spec without a ``NAME:`` prefix is this source's (e.g. an existing file)."""

    @abstractmethod
    def resolve(self, specs: list[str], options: DataOptions) -> list[Task]:
        """The tasks of all of a selection's specs for this source (a UserError for a spec that
        matches nothing)."""


class ModelLoaderBase(ABC):
    """A :class:`lingspace_harness.ModelLoader`: set ``name``; write ``claims`` and ``load``.
    Defaults: ``description = ""``; ``scores_only = False`` (set True for a loader whose
    models only score, ``ScoresOnly``)."""

    name: str
    description: str = ""
    scores_only: bool = False

    @abstractmethod
    def claims(self, spec: str) -> bool:
        """Whether a ``--model`` spec without a ``NAME:`` prefix is this loader's."""

    @abstractmethod
    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        """The model ``spec`` names (a ModelError with a clear message on failure)."""


class GradientStrategyBase(ABC):
    """A :class:`lingspace_harness.GradientStrategy`: set ``name`` and ``kind`` (``"vector"``
    or ``"mask"``); write ``reduce``. Defaults: ``description = ""``; ``provides = ()``.
    A subclass may add ``add_arguments(group)`` and ``Options`` (its options, which reach
    ``reduce`` as ``options``), ``layer_slices(layout, options)`` (a vector's per-layer slices,
    ``HasLayerSlices``) and ``reduce_tensor(grad, layout, options)`` (``ReducesOnDevice``)."""

    name: str
    kind: str
    description: str = ""
    provides: tuple[str, ...] = ()

    @abstractmethod
    def reduce(self, grad: np.ndarray, layout: ParamLayout, options: Any) -> np.ndarray:
        """What is stored for a task: its flat float32 differential ``grad`` (in ``layout``
        order) reduced to a vector, or to a sorted index mask."""


class MetricBase(ABC):
    """A :class:`lingspace_harness.Metric`: set ``name``; write ``compute``. Defaults:
    ``description = ""``; ``always = False`` (``AlwaysComputed``); ``needs = ()`` and
    ``provides = ()``; ``check(options, scores_only)`` accepts everything (``ChecksOptions``);
    ``summary(results)`` says nothing (``Summarises``). A subclass may add ``strategies(ctx)``
    (``ReadsGradients``), ``units(ctx)`` with ``run_unit(ctx, unit)`` (``HasUnits``: both or
    neither), ``add_arguments(group)`` and ``Options`` (its own options)."""

    name: str
    description: str = ""
    always: bool = False
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    @abstractmethod
    def compute(self, ctx: RunContext) -> MetricResult:
        """The metric's task fields and/or space, from the run's finished units and scores."""

    def check(self, options: Any, scores_only: bool) -> None:
        """Before any data or model loads: raise UserError for options this run cannot honour
        (``scores_only``: the model only scores). The default accepts every run."""
        return None

    def summary(self, results: dict[str, Any]) -> str | None:
        """The metric's part of ``run``'s last line; the default, None, adds nothing."""
        return None


class SpaceBuilderBase(ABC):
    """A :class:`lingspace_harness.SpaceBuilder`: set ``name``; write ``build``. Default:
    ``description = ""``. A subclass may add ``add_arguments(group)`` and ``Options``."""

    name: str
    description: str = ""

    @abstractmethod
    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        """The analysis of ``results``' spaces (what results.json can hold), for ``analysis[name]``."""


class HypothesisBase(ABC):
    """A :class:`lingspace_harness.Hypothesis`: set ``name``; write ``matrix``. Default:
    ``description = ""``. It has no optional members."""

    name: str
    description: str = ""

    @abstractmethod
    def matrix(self, tasks: list[str], results: dict[str, Any]) -> npt.ArrayLike | None:
        """An N x N predicted similarity between ``tasks``, or None where it does not apply."""


class ExecutorBase(ABC):
    """A :class:`lingspace_harness.Executor`: set ``name``; write ``execute``. Defaults:
    ``description = ""``; ``check(config)`` accepts every run (``ChecksConfig``). A subclass
    may add ``add_arguments(group)`` and ``Options`` (they reach it as ``worker.options``)."""

    name: str
    description: str = ""

    @abstractmethod
    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        """Run every unit of each stage, stage after stage, leaving each stored in the unit cache."""

    def check(self, config: RunConfig) -> None:
        """Before any work: raise UserError for what this executor cannot do (e.g. a missing
        dependency). The default accepts every run."""
        return None


class ReporterBase(ABC):
    """A :class:`lingspace_harness.Reporter`: set ``name``; write ``report``. Default:
    ``description = ""``. A subclass may add ``add_arguments(group)`` and ``Options``."""

    name: str
    description: str = ""

    @abstractmethod
    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        """Write files from a finished results dict into ``out_dir``; return their paths."""


class CommandBase(ABC):
    """A :class:`lingspace_harness.Command`: set ``name``; write ``run``. Defaults: ``help = ""``;
    ``add_arguments(parser)`` adds none. A subclass may add ``plugin_options`` (the kinds whose
    ``run`` options it takes, ``TakesPluginOptions``)."""

    name: str
    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The sub-command's arguments; the default adds none."""
        return None

    @abstractmethod
    def run(self, args: argparse.Namespace, harness: Registries) -> int:
        """The sub-command itself: its exit code (raise UserError for the user's mistakes)."""


if TYPE_CHECKING:  # a type checker sees each base keep its kind's protocol

    def _keeps_its_protocol(
        source: TaskSourceBase,
        loader: ModelLoaderBase,
        strategy: GradientStrategyBase,
        metric: MetricBase,
        builder: SpaceBuilderBase,
        hypothesis: HypothesisBase,
        executor: ExecutorBase,
        reporter: ReporterBase,
        command: CommandBase,
    ) -> tuple[
        TaskSource, ModelLoader, GradientStrategy, Metric, SpaceBuilder, Hypothesis, Executor, Reporter, Command
    ]:
        return (source, loader, strategy, metric, builder, hypothesis, executor, reporter, command)
