"""lingspace-harness: linguistic task spaces from language models' learning signals.

The public API for plugins lives here (each name is documented in CONTRIBUTING.md); anything
else may change without notice.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .access import ModelAccess
from .agreement import cluster_agreement
from .analysis import AnalysisContext, AnalysisOptions, analyse, hypothesis_from_file
from .arguments import comma_list, positive_int
from .capabilities import (
    AlwaysComputed,
    ChecksConfig,
    ChecksOptions,
    Configurable,
    HasLayerSlices,
    HasOptions,
    HasUnits,
    NeedsCapabilities,
    ProvidesCapabilities,
    ReadsGradients,
    ScoresOnly,
    Summarises,
)
from .config import RunConfig, cache_dir
from .errors import DataError, ModelError, PluginError, UnknownNameError, UserError, error_reason
from .execution import Worker, WorkerSpec
from .gradients import ParamLayout, gradient_differential, gradient_differentials, layout_of, select_parameters
from .hookspecs import hookimpl
from .models import LoadedModel, ModelLoader, ModelOptions, resolve_loader
from .pairs import MinimalPair, PairScore, pairs_from_rows, read_jsonl, read_pairs_jsonl
from .plugins import Harness, load_harness, register_plugin, unregister_plugin
from .progress import progress_bar
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
    Space,
    SpaceBuilder,
    Unit,
)
from .results import atomic_open, read_results, write_atomic, write_results
from .runner import run
from .scoring import prefix_token_id
from .selection import largest_magnitudes
from .stats import (
    is_symmetric,
    mantel,
    partial_mantel,
    spearman_rows,
    split_half_reliability,
    symmetrise,
    within_between,
)
from .tasks import DataOptions, Task, TaskData, TaskSource, select_tasks, split_pairs, task_delimiter, task_source
from .units import UnitStore


def main(argv: list[str] | None = None) -> int:
    """The CLI: ``main(["run", ...])`` runs a sub-command and returns its exit code (user
    mistakes print one ``error:`` line)."""
    from .cli import main as cli_main

    return cli_main(argv)


try:
    __version__ = version("lingspace-harness")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "AlwaysComputed",
    "ChecksConfig",
    "ChecksOptions",
    "Configurable",
    "HasLayerSlices",
    "HasOptions",
    "HasUnits",
    "NeedsCapabilities",
    "ProvidesCapabilities",
    "ReadsGradients",
    "Registries",
    "ScoresOnly",
    "Summarises",
    "AnalysisContext",
    "AnalysisOptions",
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
    "Space",
    "SpaceBuilder",
    "Task",
    "TaskData",
    "TaskSource",
    "Unit",
    "UnitStore",
    "UnknownNameError",
    "UserError",
    "Worker",
    "WorkerSpec",
    "analyse",
    "atomic_open",
    "cache_dir",
    "cluster_agreement",
    "comma_list",
    "error_reason",
    "gradient_differential",
    "gradient_differentials",
    "hookimpl",
    "hypothesis_from_file",
    "is_symmetric",
    "largest_magnitudes",
    "layout_of",
    "load_harness",
    "main",
    "mantel",
    "pairs_from_rows",
    "partial_mantel",
    "positive_int",
    "prefix_token_id",
    "progress_bar",
    "read_jsonl",
    "read_pairs_jsonl",
    "read_results",
    "register_plugin",
    "resolve_loader",
    "run",
    "select_parameters",
    "select_tasks",
    "spearman_rows",
    "split_half_reliability",
    "split_pairs",
    "symmetrise",
    "task_delimiter",
    "task_source",
    "unregister_plugin",
    "within_between",
    "write_atomic",
    "write_results",
    "__version__",
]
