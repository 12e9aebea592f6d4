"""The core sub-commands: run, tasks, plugins, metrics."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from .arguments import comma_list, positive_int, shard, split_fractions
from .errors import UserError
from .execution import read_run_file, shard_status
from .plugins import Harness
from .results import check_output_dir
from .runner import RunConfig, prepare, run
from .scoring import METHODS
from .tasks import SPLIT_FRACTIONS, DataOptions, select_tasks, task_source
from .yaml_path import write_local_yaml, yaml_path


class RunCommand:
    name = "run"
    help = "score tasks with a model and build the requested task spaces"

    def __init__(self, executors: Iterable[Any] = ()) -> None:
        self.executors = list(executors)  # their add_arguments join the execution options
        self.executor_dests: set[str] = set()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True,
                            help="hub id, local directory or .gguf file; or LOADER:spec")
        parser.add_argument("--tasks", required=True, type=comma_list,
                            help="comma-separated task globs, e.g. 'blimp_*'; 'lm_eval:GLOB' or a task "
                                 "YAML file or directory for lm-eval tasks")
        _add_include_path(parser)
        parser.add_argument("--metric", dest="metrics", type=comma_list, default=["accuracy"],
                            help="comma-separated metrics (default: accuracy)")
        parser.add_argument("--output", type=Path, default=Path("out"), help="output directory")
        _add_data_dir(parser)
        parser.add_argument("--limit", type=positive_int, help="cap each split of every task at N pairs")
        parser.add_argument("--seed", type=int, default=0, help="split and run seed (default 0)")
        parser.add_argument("--split-fractions", type=split_fractions, default=SPLIT_FRACTIONS,
                            metavar="TRAIN,VAL,TEST",
                            help="how each task's pairs are split (default 0.4,0.1,0.5; "
                                 "0,0,1 scores every pair)")
        parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
        parser.add_argument("--dtype", default="float32",
                            choices=["float32", "bfloat16", "float16", "auto"])
        parser.add_argument("--revision", help="model revision, e.g. a Pythia checkpoint 'step1000'")
        parser.add_argument("--batch-size", type=positive_int, default=128,
                            help="sentences per forward pass (default 128)")
        parser.add_argument("--prefix-token",
                            help="token (or id) before each sentence; default BOS, else EOS")
        parser.add_argument("--scoring", choices=METHODS, default="auto",
                            help="'trie' shares prefixes, 'padded' is plain batching (default auto)")
        parser.add_argument("--report", dest="reporters", type=comma_list, default=[],
                            help="comma-separated reporters to run afterwards")
        execution = parser.add_argument_group("execution (units of work; never changes the results)")
        execution.add_argument("--executor", default="serial",
                               help="how units run: serial, ray, or a plugin's (default serial)")
        execution.add_argument("--shard", type=shard, metavar="I/N",
                               help="run only slice I of N of the units into --output; then `merge`")
        for executor in self.executors:
            if hasattr(executor, "add_arguments"):
                before = {a.dest for a in parser._actions}
                executor.add_arguments(execution)
                self.executor_dests |= {a.dest for a in parser._actions} - before
        D = RunConfig  # one source of truth for the defaults
        grad = parser.add_argument_group("gradient differentials (gradsim, overlap, transfer, lookahead)")
        grad.add_argument("--gradsim-strategy", default=D.gradsim_strategy,
                          help="strategy whose vectors gradsim compares: full or projected (default %(default)s)")
        grad.add_argument("--topk", type=float, default=D.topk,
                          help="FTGD mask: fraction of parameters kept (default %(default)s)")
        grad.add_argument("--projection-dim", type=positive_int, default=D.projection_dim,
                          help="values per parameter tensor for the projected strategy (default %(default)s)")
        grad.add_argument("--include-embeddings", action="store_true",
                          help="include token/position embeddings (and a tied LM head)")
        grad.add_argument("--gradient-dtype", choices=["float32", "float16"], default=D.gradient_dtype,
                          help="storage of full differentials on disk (default %(default)s)")
        ftgd = parser.add_argument_group("FTGD fine-tuning (transfer, lookahead)")
        ftgd.add_argument("--ftgd-lr", type=float, default=D.ftgd_lr, help="Adam learning rate (default %(default)s)")
        ftgd.add_argument("--ftgd-steps", type=positive_int, default=D.ftgd_steps,
                          help="most steps per task (default %(default)s)")
        ftgd.add_argument("--ftgd-batch", type=positive_int, default=D.ftgd_batch, help="pairs per step (default %(default)s)")
        ftgd.add_argument("--ftgd-eval-every", type=positive_int, default=D.ftgd_eval_every,
                          help="validate every N steps (default %(default)s)")
        ftgd.add_argument("--ftgd-patience", type=positive_int, default=D.ftgd_patience,
                          help="stop after N validations without improvement (default %(default)s)")
        ftgd.add_argument("--lookahead-steps", type=positive_int, default=D.lookahead_steps,
                          help="FTGD steps per source for lookahead (default %(default)s)")
        ftgd.add_argument("--transfer-baseline", action="store_true",
                          help="also tune with the full gradient (no mask), for comparison")
        ftgd.add_argument("--cka-reference", metavar="MODEL",
                          help="cka: also compare with this model or checkpoint on the same probe set")
        analysis = parser.add_argument_group("analysis (also: lingspace-harness analyse DIR)")
        analysis.add_argument("--analysis", type=comma_list, metavar="BUILDERS",
                              help="space builders to run on the finished spaces (default: all; 'none': skip)")
        analysis.add_argument("--permutations", type=positive_int, default=D.permutations,
                              help="permutations per hypothesis test (default %(default)s)")
        analysis.add_argument("--hypothesis", dest="hypotheses", type=Path, action="append", default=[],
                              metavar="FILE", help="your own hypothesis (CSV or JSON, see README); repeatable")
        parser.add_argument("--split-half", action="store_true",
                            help="noise ceiling: also build each learned space from two disjoint halves of "
                                 "every task's training pairs (about twice the cost)")

    def config(self, args: argparse.Namespace) -> RunConfig:
        """The RunConfig that parsed ``run`` arguments stand for."""
        fields = RunConfig.__dataclass_fields__
        config = RunConfig(**{k: v for k, v in vars(args).items() if k in fields})
        if config.analysis == ["none"]:
            config.analysis = []
        config.executor_options = {k: getattr(args, k) for k in sorted(self.executor_dests)
                                   if getattr(args, k, None) is not None}
        return config

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        check_output_dir(args.output)
        config = self.config(args)
        results = run(harness, config)
        if results is None:
            i, n = config.shard
            print(f"shard {i}/{n} finished in {config.output}; when all {n} have, run: "
                  f"lingspace-harness merge {config.output}")
            return 0
        print_summary(results, config.output)
        return 0


def print_summary(results: dict, output: Path) -> None:
    tasks = results["tasks"]
    accs = [t["accuracy"] for t in tasks.values()]
    print(f"{len(tasks)} tasks, mean accuracy {sum(accs) / len(accs):.4f}; "
          f"wrote {output / 'results.json'}")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get("LINGSPACE_BLIMP_DIR")
    parser.add_argument("--data-dir", type=Path, default=Path(env) if env else None,
                        help="local data directory (BLiMP: the official <UID>.jsonl files; "
                             "default $LINGSPACE_BLIMP_DIR, else the hub)")


def _add_include_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include-path", dest="include_paths", type=Path, action="append", default=[],
                        metavar="DIR", help="a directory of task definitions for task sources, e.g. "
                                            "lm-eval task YAMLs for 'lm_eval:NAME' (repeatable)")


class MergeCommand:
    name = "merge"
    help = "assemble results.json from the units that `run --shard I/N` jobs wrote into DIR"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory", type=Path, help="the --output directory the shards shared")
        parser.add_argument("--report", dest="reporters", type=comma_list, default=None,
                            help="comma-separated reporters to run afterwards (default: the run's)")
        parser.add_argument("--status", action="store_true",
                            help="only print how many units each shard has left, and exit")

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
        results = run(harness, config, merge_of=shards)
        print_summary(results, config.output)
        return 0


class TasksCommand:
    name = "tasks"
    help = "list tasks: name, phenomenon, field, source (as `run` with the same options would load them)"
    HEADER = ("name", "phenomenon", "field", "source")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("globs", nargs="?", type=comma_list, default=["*"],
                            help="comma-separated globs (default: all); 'lm_eval:GLOB' or a path for lm-eval tasks")
        parser.add_argument("--json", action="store_true", help="print JSON lines (no header)")
        _add_data_dir(parser)
        _add_include_path(parser)

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        options = DataOptions(data_dir=args.data_dir, include_paths=tuple(args.include_paths))
        tasks = select_tasks(harness.tasks, harness.task_sources, args.globs, options)
        if not args.json:
            print("\t".join(self.HEADER))
        for task in tasks:
            row = {"name": task.name, "phenomenon": task.phenomenon, "field": task.field,
                   "group": task.group, "source": task_source(task, options)}
            print(json.dumps(row) if args.json else "\t".join(row[k] for k in self.HEADER))
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


class YamlPathCommand:
    name = "yaml-path"
    help = "print the directory of the lm-eval task YAMLs (or write a local-data copy)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data-dir", type=Path, help="BLiMP <UID>.jsonl files for a local-data copy")
        parser.add_argument("--write", type=Path, metavar="DIR", help="where to write the local-data copy")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        if (args.data_dir is None) != (args.write is None):
            raise UserError("yaml-path: --data-dir and --write go together")
        if args.write is None:
            print(yaml_path())
            return 0
        write_local_yaml(args.data_dir, args.write)
        print(args.write.resolve())
        return 0


def core_commands(harness: Harness) -> list[Any]:
    """The built-in sub-commands (``run`` gets the executors' options)."""
    return [RunCommand(harness.executors), MergeCommand(), TasksCommand(), PluginsCommand(), MetricsCommand(),
            YamlPathCommand()]


