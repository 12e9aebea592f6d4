"""The core sub-commands: run, tasks, plugins, metrics."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .arguments import comma_list, positive_int, shard, split_fractions
from .batch_size import DEFAULT, batch_size_arg
from .capabilities import Summarises
from .config import IN_PROCESS, RunConfig
from .config_file import run_defaults
from .errors import UserError
from .execution import read_run_file, shard_status
from .options import add_plugin_arguments, parsed_options
from .plugins import Harness
from .results import PAIRS_FILE, RESULTS_FILE, check_output_dir
from .runner import prepare, run
from .scoring import METHODS
from .tasks import SPLIT_FRACTIONS, DataOptions, select_tasks, task_source


class RunCommand:
    name = "run"
    help = "score tasks with a model and build the requested task spaces"

    def __init__(self, harness: Harness | None = None) -> None:
        self.harness = harness

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.usage = (  # not every option of every plugin: the groups below list them
            "%(prog)s --model MODEL --tasks GLOBS [--metric NAMES] [--output DIR] [--config FILE] [options]"
        )
        _add_run_arguments(parser)
        _add_scoring_arguments(parser)
        _add_analysis_arguments(parser)
        execution = parser.add_argument_group("execution (units of work; never changes the results)")
        execution.add_argument(
            "--executor",
            default=IN_PROCESS,
            help=f"how units run: {IN_PROCESS} (in this process, the default) or a plugin's"
            + (
                f" ({', '.join(self.harness.executors.names())})"
                if self.harness and len(self.harness.executors)
                else ""
            ),
        )
        execution.add_argument(
            "--shard", type=shard, metavar="I/N", help="run only slice I of N of the units into --output; then `merge`"
        )
        if self.harness is not None:
            add_plugin_arguments(parser, self.harness.registries_by_kind())

    def defaults(self, path: Path) -> dict[str, Any]:
        """``run --config FILE``: the option destinations the file sets (``config_file``)."""
        if self.harness is None:
            raise ValueError("run --config needs the loaded plugins")
        return run_defaults(path, self.harness.optioned_kind)

    def config(self, args: argparse.Namespace) -> RunConfig:
        """The RunConfig that parsed ``run`` arguments stand for (a UserError without a model or tasks)."""
        for name in ("model", "tasks"):
            if getattr(args, name) is None:
                raise UserError(f"run: --{name} is required (or --config FILE that sets it)")
        fields = RunConfig.__dataclass_fields__
        config = RunConfig(**{k: v for k, v in vars(args).items() if k in fields})
        if config.analysis == ["none"]:
            config.analysis = []
        options = parsed_options(args)
        config.executor_options = options.pop("executor", {}).get(config.executor, {})
        config.options = options
        return config

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        check_output_dir(args.output)
        config = self.config(args)
        check_output_dir(config.output)
        reports: list[Path] = []
        results = run(harness, config, overwrite=args.overwrite, reports=reports)
        if config.shard is not None:  # a shard writes no results.json: merge assembles it
            i, n = config.shard
            print(
                f"shard {i}/{n} finished in {config.output}; when all {n} have, run: "
                f"lingspace-harness merge {config.output}"
            )
            return 0
        if results is None:
            raise ValueError("a run that is not a shard returned no results")
        print_summary(harness, results, config.output, reports)
        return 0


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings from a file with run.json's keys (a run.json reproduces its run); options given here win",
    )
    parser.add_argument(
        "--model",
        help="hub id (MODEL@REVISION for a checkpoint), local directory or .gguf file; or LOADER:spec",
    )
    parser.add_argument(
        "--tasks",
        type=comma_list,
        help="comma-separated task globs, e.g. 'blimp_*'; 'lm_eval:GLOB' or a task "
        "YAML file or directory for lm-eval tasks",
    )
    _add_include_path(parser)
    parser.add_argument(
        "--metric",
        dest="metrics",
        type=comma_list,
        default=[],
        help="comma-separated metrics (see `lingspace-harness metrics`); those every run computes are always added",
    )
    parser.add_argument("--output", type=Path, default=Path("out"), help="output directory (default: out)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace another run's files in --output (default: refuse; the same run resumes)",
    )
    _add_data_dir(parser)
    parser.add_argument("--limit", type=positive_int, help="cap each split of every task at N pairs")
    parser.add_argument("--seed", type=int, default=0, help="split and run seed (default 0)")
    parser.add_argument(
        "--split-fractions",
        type=split_fractions,
        default=SPLIT_FRACTIONS,
        metavar="TRAIN,VAL,TEST",
        help="how each task's pairs are split (default 0.4,0.1,0.5; 0,0,1 scores every pair)",
    )
    parser.add_argument(
        "--report", dest="reporters", type=comma_list, default=[], help="comma-separated reporters to run afterwards"
    )
    parser.add_argument(
        "--split-half",
        action="store_true",
        help="noise ceiling: also build each learned space from two disjoint halves of "
        "every task's training pairs (about twice the cost)",
    )


def _add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and scoring")
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")
    group.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64", "bfloat16", "float16", "auto"],
        help="model weights' dtype (default float32; float64 for precision checks; bfloat16 is slow on most CPUs)",
    )
    group.add_argument(
        "--revision",
        help="hub model revision, e.g. a Pythia checkpoint 'step1000' (or --model MODEL@REVISION); "
        "results.json records the commit it resolved to",
    )
    group.add_argument(
        "--batch-size",
        type=batch_size_arg,
        default=DEFAULT,
        help="sentences per forward pass, or 'auto': the largest that fits on an accelerator (128 on the CPU); "
        "the other bounds of a pass grow with it above 128 (default 128)",
    )
    group.add_argument(
        "--device-map",
        help="hf: from_pretrained's device_map, e.g. auto (spread over the GPUs; not with --device)",
    )
    group.add_argument("--attn-implementation", help="hf: from_pretrained's attn_implementation, e.g. sdpa or eager")
    group.add_argument(
        "--trust-remote-code", action="store_true", help="hf: run the model repository's own code (read it first)"
    )
    group.add_argument("--prefix-token", help="token (or id) before each sentence; default BOS, else EOS")
    group.add_argument(
        "--scoring",
        choices=METHODS,
        default="auto",
        help="'trie' shares prefixes, 'padded' is plain batching, for scores, gradients, tuning "
        "and hidden states alike (default auto: trie if the model honours tree masks)",
    )
    group.add_argument(
        "--include-embeddings",
        action="store_true",
        help="gradients: include token/position embeddings (and a tied LM head)",
    )


def _add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    analysis = parser.add_argument_group("analysis (also: lingspace-harness analyse DIR)")
    analysis.add_argument(
        "--analysis",
        type=comma_list,
        metavar="BUILDERS",
        help="space builders to run on the finished spaces (default: all; 'none': skip)",
    )
    analysis.add_argument(
        "--permutations",
        type=positive_int,
        default=RunConfig.permutations,
        help="permutations per hypothesis test (default %(default)s)",
    )
    analysis.add_argument(
        "--hypothesis",
        dest="hypotheses",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="your own hypothesis (CSV or JSON, see docs/user-guide/analysis.md); repeatable",
    )


def print_summary(harness: Harness, results: dict, output: Path, reports: Iterable[Path] = ()) -> None:
    """One line: the number of tasks, each metric's own summary, and the files written where."""
    parts = [f"{len(results['tasks'])} tasks"]
    for metric in harness.metrics:
        line = metric.summary(results) if isinstance(metric, Summarises) else None
        if line:
            parts.append(line)
    files = [name for name in (RESULTS_FILE, PAIRS_FILE) if (output / name).is_file()]
    files += [str(p.relative_to(output)) if p.is_relative_to(output) else str(p) for p in reports]
    shown = ", ".join(files[:-1]) + " and " + files[-1] if len(files) > 1 else files[0]
    print(f"{', '.join(parts)}; wrote {shown} in {output.resolve()}")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get("LINGSPACE_BLIMP_DIR")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env) if env else None,
        help="local data directory (BLiMP: the official <UID>.jsonl files; default $LINGSPACE_BLIMP_DIR, else the hub)",
    )


def _add_include_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--include-path",
        dest="include_paths",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of task definitions for task sources, e.g. "
        "lm-eval task YAMLs for 'lm_eval:NAME' (repeatable)",
    )


class MergeCommand:
    name = "merge"
    help = "assemble results.json from the units that `run --shard I/N` jobs wrote into DIR"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory", type=Path, help="the --output directory the shards shared")
        parser.add_argument(
            "--report",
            dest="reporters",
            type=comma_list,
            default=None,
            help="comma-separated reporters to run afterwards (default: the run's)",
        )
        parser.add_argument(
            "--status", action="store_true", help="only print how many units each shard has left, and exit"
        )

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        config = read_run_file(args.directory)
        config.output = args.directory
        if args.reporters is not None:
            config.reporters = args.reporters
        if config.shard is None:
            raise UserError(f"merge: {args.directory} was not written by `run --shard I/N`")
        shards, config.shard = config.shard[1], None
        if args.status:
            print(shard_status(prepare(harness, config), shards))
            return 0
        reports: list[Path] = []
        results = run(harness, config, merge_of=shards, reports=reports)
        if results is None:  # run returns None for a shard only, and merge is not one
            raise ValueError("merge produced no results")
        print_summary(harness, results, config.output, reports)
        return 0


class TasksCommand:
    name = "tasks"
    help = "list tasks: name, phenomenon, field, source (as `run` with the same options would load them)"
    HEADER = ("name", "phenomenon", "field", "source")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "globs",
            nargs="?",
            type=comma_list,
            default=["*"],
            help="comma-separated globs (default: all); 'lm_eval:GLOB' or a path for lm-eval tasks",
        )
        parser.add_argument("--json", action="store_true", help="print JSON lines (no header)")
        _add_data_dir(parser)
        _add_include_path(parser)

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        options = DataOptions(data_dir=args.data_dir, include_paths=tuple(args.include_paths))
        tasks = select_tasks(harness.tasks, harness.task_sources, args.globs, options)
        if not args.json:
            print("\t".join(self.HEADER))
        for task in tasks:
            row = {
                "name": task.name,
                "phenomenon": task.phenomenon,
                "field": task.field,
                "group": task.group,
                "source": task_source(task, options),
            }
            print(json.dumps(row) if args.json else "\t".join(row[k] or "" for k in self.HEADER))
        return 0


class PluginsCommand:
    name = "plugins"
    help = "print the loaded plugins as JSON"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        print(json.dumps([asdict(p) for p in harness.plugins.values()], indent=2))
        return 0


class MetricsCommand:
    name = "metrics"
    help = "list the metrics --metric accepts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        for metric in harness.metrics:
            print(f"{metric.name}\t{harness.metrics.owner(metric.name)}\t{metric.description}")
        return 0


def core_commands(harness: Harness) -> list[Any]:
    """The core's sub-commands (``run`` gets the plugins' own options)."""
    return [RunCommand(harness), MergeCommand(), TasksCommand(), PluginsCommand(), MetricsCommand()]
