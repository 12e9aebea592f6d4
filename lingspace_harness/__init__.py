"""lingspace-harness: linguistic task spaces from language models' learning signals.

The public API for plugins lives here; anything else may change without notice.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import DataError, ModelError, PluginError, UnknownNameError, UserError
from .hookspecs import hookimpl
from .ftgd import FTGDSettings, MaskedTuner
from .models import LoadedModel, ModelLoader, ModelOptions, resolve_loader
from .pairs import MinimalPair, pairs_from_rows, read_jsonl, read_pairs_jsonl
from .plugins import Harness, load_harness, register_plugin, unregister_plugin
from .gradients import ParamLayout, gradient_differential, layout_of, select_parameters
from .probing import pending_sources, probe_sentences, probe_states, tuned_row, tuned_rows, tuned_states
from .progress import progress_bar
from .protocols import (Command, Executor, GradientOptions, GradientStrategy, Hypothesis, Metric, MetricResult,
                        Reporter, Space, SpaceBuilder, Unit)
from .execution import Worker, WorkerSpec, plan_units
from .representations import pooled_hidden_states
from .runner import PairScore, RunConfig, RunContext, cache_dir, run
from .scoring import prefix_token_id, score_requests, sentence_requests
from .tasks import DataOptions, Task, TaskData, split_pairs
from .yaml_path import yaml_path
from .analysis import AnalysisContext, AnalysisOptions, analyse, hypothesis_from_file
from .results import write_results
from .stats import cluster_agreement, is_symmetric, mantel, split_half_reliability, symmetrise, within_between
from .results import atomic_open, read_results, write_atomic
from .commands import RunCommand, comma_list, positive_int

try:
    __version__ = version("lingspace-harness")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "AnalysisContext", "AnalysisOptions", "analyse", "cluster_agreement", "hypothesis_from_file",
    "is_symmetric", "mantel", "split_half_reliability", "symmetrise", "within_between", "write_results",
    "FTGDSettings", "MaskedTuner", "pooled_hidden_states", "probe_sentences", "probe_states",
    "progress_bar", "resolve_loader", "tuned_rows", "tuned_states", "tuned_row", "pending_sources",
    "Executor", "Hypothesis", "Unit", "Worker", "WorkerSpec", "plan_units",
    "Command", "DataError", "GradientOptions", "ParamLayout", "gradient_differential", "layout_of",
    "select_parameters", "DataOptions", "GradientStrategy", "Harness", "LoadedModel",
    "Metric", "MetricResult", "MinimalPair", "ModelError", "ModelLoader", "ModelOptions",
    "PairScore", "PluginError", "Reporter", "RunConfig", "RunContext", "Space", "SpaceBuilder",
    "Task", "TaskData", "UnknownNameError", "UserError", "cache_dir", "hookimpl",
    "load_harness", "pairs_from_rows", "prefix_token_id", "read_jsonl", "read_pairs_jsonl",
    "register_plugin", "run", "score_requests", "sentence_requests", "split_pairs",
    "unregister_plugin", "yaml_path", "__version__",
    "atomic_open", "comma_list", "positive_int", "read_results", "write_atomic", "RunCommand",
]
