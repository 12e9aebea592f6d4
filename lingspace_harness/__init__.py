"""lingspace-harness: linguistic task spaces from language models' learning signals.

The public API for plugins, and ``load`` for a finished run's results, live here (each name is
documented in docs/plugins/api.md); anything else may change without notice.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .access import ModelAccess
from .analysis import AnalysisContext, AnalysisOptions
from .bases import (
    CommandBase,
    ExecutorBase,
    GradientStrategyBase,
    HypothesisBase,
    MetricBase,
    ModelLoaderBase,
    ReporterBase,
    SpaceBuilderBase,
    TaskSourceBase,
)
from .capabilities import (
    AlwaysComputed,
    ArgumentGroup,
    ChecksConfig,
    ChecksOptions,
    Configurable,
    HasLayerSlices,
    HasOptions,
    HasUnits,
    NeedsCapabilities,
    ProvidesCapabilities,
    ReadsGradients,
    ReducesOnDevice,
    ScoresOnly,
    Summarises,
    TakesPluginOptions,
)
from .config import RunConfig
from .errors import DataError, ModelError, PluginError, UnknownNameError, UserError
from .execution import Worker, WorkerSpec
from .gradients import ParamLayout
from .hookspecs import hookimpl
from .models import LoadedModel, ModelLoader, ModelOptions
from .pairs import MinimalPair, PairScore
from .plugins import Harness, load_harness, register_plugin, unregister_plugin
from .protocols import (
    Command,
    Executor,
    GradientStrategy,
    Hypothesis,
    Metric,
    MetricResult,
    Registries,
    Reporter,
    RunContext,
    RunPlan,
    Space,
    SpaceBuilder,
    Unit,
)
from .python_api import run
from .run_results import RunResults, SpaceResult, load
from .tasks import DataOptions, Task, TaskData, TaskSource
from .units import UnitStore


def main(argv: list[str] | None = None) -> int:
    """The CLI: ``main(["run", ...])`` runs a sub-command and returns its exit code (user
    mistakes print one ``error:`` line)."""
    from .cli import main as cli_main

    return cli_main(argv)


#: Helpers that left the top-level API for a submodule (0.2): still importable from here, with a
#: DeprecationWarning, until 0.3.
_MOVED = {
    "cluster_agreement": "agreement",
    "analyse": "analysis",
    "hypothesis_from_file": "analysis",
    "comma_list": "arguments",
    "positive_int": "arguments",
    "cache_dir": "config",
    "error_reason": "errors",
    "gradient_differential": "gradients",
    "gradient_differentials": "gradients",
    "layout_of": "gradients",
    "select_parameters": "gradients",
    "resolve_loader": "models",
    "pairs_from_rows": "pairs",
    "read_jsonl": "pairs",
    "read_pairs_jsonl": "pairs",
    "progress_bar": "progress",
    "atomic_open": "results",
    "read_results": "results",
    "write_atomic": "results",
    "write_results": "results",
    "prefix_token_id": "scoring",
    "largest_magnitudes": "selection",
    "is_symmetric": "stats",
    "mantel": "stats",
    "partial_mantel": "stats",
    "spearman_rows": "stats",
    "split_half_reliability": "stats",
    "symmetrise": "stats",
    "within_between": "stats",
    "select_tasks": "tasks",
    "split_pairs": "tasks",
    "task_delimiter": "tasks",
    "task_source": "tasks",
}


def __getattr__(name: str) -> object:
    """A moved helper (``_MOVED``), with a DeprecationWarning naming its new module."""
    if name not in _MOVED:
        raise AttributeError(f"module 'lingspace_harness' has no attribute {name!r}")
    import importlib
    import warnings

    module = f"lingspace_harness.{_MOVED[name]}"
    warnings.warn(
        f"lingspace_harness.{name} moved to {module}.{name}; the old name goes in 0.3", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(module), name)


try:
    __version__ = version("lingspace-harness")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "AlwaysComputed",
    "ArgumentGroup",
    "ChecksConfig",
    "ChecksOptions",
    "Configurable",
    "HasLayerSlices",
    "HasOptions",
    "HasUnits",
    "NeedsCapabilities",
    "ProvidesCapabilities",
    "ReadsGradients",
    "ReducesOnDevice",
    "Registries",
    "ScoresOnly",
    "Summarises",
    "TakesPluginOptions",
    "AnalysisContext",
    "AnalysisOptions",
    "CommandBase",
    "ExecutorBase",
    "GradientStrategyBase",
    "HypothesisBase",
    "MetricBase",
    "ModelLoaderBase",
    "ReporterBase",
    "SpaceBuilderBase",
    "TaskSourceBase",
    "Command",
    "DataError",
    "DataOptions",
    "Executor",
    "GradientStrategy",
    "Harness",
    "Hypothesis",
    "LoadedModel",
    "Metric",
    "MetricResult",
    "MinimalPair",
    "ModelAccess",
    "ModelError",
    "ModelLoader",
    "ModelOptions",
    "PairScore",
    "ParamLayout",
    "PluginError",
    "Reporter",
    "RunConfig",
    "RunContext",
    "RunPlan",
    "RunResults",
    "Space",
    "SpaceBuilder",
    "SpaceResult",
    "Task",
    "TaskData",
    "TaskSource",
    "Unit",
    "UnitStore",
    "UnknownNameError",
    "UserError",
    "Worker",
    "WorkerSpec",
    "hookimpl",
    "load",
    "load_harness",
    "main",
    "register_plugin",
    "run",
    "unregister_plugin",
    "__version__",
]
