"""lingspace-harness: linguistic task spaces from language models' learning signals.

The public API for plugins lives here; anything else may change without notice.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .analysis import AnalysisContext, AnalysisOptions, analyse, hypothesis_from_file
from .arguments import comma_list, positive_int
from .commands import RunCommand
from .errors import DataError, ModelError, PluginError, UnknownNameError, UserError
from .execution import Worker, WorkerSpec, plan_units
from .ftgd import FTGDSettings, MaskedTuner
from .gradients import ParamLayout, gradient_differential, layout_of, select_parameters
from .hookspecs import hookimpl
from .models import LoadedModel, ModelLoader, ModelOptions, resolve_loader
from .pairs import MinimalPair, pairs_from_rows, read_jsonl, read_pairs_jsonl
from .plugins import Harness, load_harness, register_plugin, unregister_plugin
from .probing import pending_sources, probe_sentences, probe_states, tuned_row, tuned_rows, tuned_states
from .progress import progress_bar
from .protocols import (Command, Executor, GradientOptions, GradientStrategy, Hypothesis, Metric,
                        MetricResult, Reporter, Space, SpaceBuilder, Unit)
from .representations import pooled_hidden_states
from .results import atomic_open, read_results, write_atomic, write_results
from .runner import PairScore, RunConfig, RunContext, cache_dir, run
from .scoring import prefix_token_id, score_requests, sentence_requests
from .stats import cluster_agreement, is_symmetric, mantel, split_half_reliability, symmetrise, within_between
from .tasks import DataOptions, Task, TaskData, TaskSource, select_tasks, split_pairs, task_source
from .yaml_path import yaml_path

try:
    __version__ = version("lingspace-harness")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "AnalysisContext", "AnalysisOptions", "Command", "DataError", "DataOptions", "Executor",
    "FTGDSettings", "GradientOptions", "GradientStrategy", "Harness", "Hypothesis", "LoadedModel",
    "MaskedTuner", "Metric", "MetricResult", "MinimalPair", "ModelError", "ModelLoader",
    "ModelOptions", "PairScore", "ParamLayout", "PluginError", "Reporter", "RunCommand",
    "RunConfig", "RunContext", "Space", "SpaceBuilder", "Task", "TaskData", "TaskSource", "Unit",
    "UnknownNameError", "UserError", "Worker", "WorkerSpec", "analyse", "atomic_open", "cache_dir",
    "cluster_agreement", "comma_list", "gradient_differential", "hookimpl", "hypothesis_from_file",
    "is_symmetric", "layout_of", "load_harness", "mantel", "pairs_from_rows", "pending_sources",
    "plan_units", "pooled_hidden_states", "positive_int", "prefix_token_id", "probe_sentences",
    "probe_states", "progress_bar", "read_jsonl", "read_pairs_jsonl", "read_results",
    "register_plugin", "resolve_loader", "run", "score_requests", "select_parameters",
    "select_tasks", "sentence_requests", "split_half_reliability", "split_pairs", "symmetrise",
    "task_source", "tuned_row", "tuned_rows", "tuned_states", "unregister_plugin", "within_between",
    "write_atomic", "write_results", "yaml_path", "__version__",
]
