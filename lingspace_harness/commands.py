"""The core sub-commands: run, tasks, plugins, metrics."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from .errors import UserError
from .plugins import Harness
from .runner import RunConfig, run
from .scoring import METHODS
from .tasks import SPLIT_FRACTIONS
from .yaml_path import write_local_yaml, yaml_path


def _globs(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _fractions(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-9:
        raise argparse.ArgumentTypeError("three non-negative numbers that sum to 1, e.g. 0.4,0.1,0.5")
    return parts  # type: ignore[return-value]


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


class RunCommand:
    name = "run"
    help = "score tasks with a model and build the requested task spaces"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True,
                            help="hub id, local directory or .gguf file; or LOADER:spec")
        parser.add_argument("--tasks", required=True, type=_globs,
                            help="comma-separated task globs, e.g. 'blimp_*'")
        parser.add_argument("--metric", dest="metrics", type=_globs, default=["accuracy"],
                            help="comma-separated metrics (default: accuracy)")
        parser.add_argument("--output", type=Path, default=Path("out"), help="output directory")
        parser.add_argument("--data-dir", type=Path,
                            default=Path(os.environ["LINGSPACE_BLIMP_DIR"])
                            if os.environ.get("LINGSPACE_BLIMP_DIR") else None,
                            help="local data directory (BLiMP: the official <UID>.jsonl files; "
                                 "default $LINGSPACE_BLIMP_DIR, else the hub)")
        parser.add_argument("--limit", type=_positive, help="cap each split of every task at N pairs")
        parser.add_argument("--seed", type=int, default=0, help="split and run seed (default 0)")
        parser.add_argument("--split-fractions", type=_fractions, default=SPLIT_FRACTIONS,
                            metavar="TRAIN,VAL,TEST",
                            help="how each task's pairs are split (default 0.4,0.1,0.5; "
                                 "0,0,1 scores every pair)")
        parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
        parser.add_argument("--dtype", default="float32",
                            choices=["float32", "bfloat16", "float16", "auto"])
        parser.add_argument("--revision", help="model revision, e.g. a Pythia checkpoint 'step1000'")
        parser.add_argument("--batch-size", type=_positive, default=128,
                            help="sentences per forward pass (default 128)")
        parser.add_argument("--prefix-token",
                            help="token (or id) before each sentence; default BOS, else EOS")
        parser.add_argument("--scoring", choices=METHODS, default="auto",
                            help="'trie' shares prefixes, 'padded' is plain batching (default auto)")
        parser.add_argument("--report", dest="reporters", type=_globs, default=[],
                            help="comma-separated reporters to run afterwards")
        D = RunConfig  # one source of truth for the defaults
        grad = parser.add_argument_group("gradient differentials (gradsim, overlap, transfer, lookahead)")
        grad.add_argument("--gradsim-strategy", default=D.gradsim_strategy,
                          help="strategy whose vectors gradsim compares: full or projected (default %(default)s)")
        grad.add_argument("--topk", type=float, default=D.topk,
                          help="FTGD mask: fraction of parameters kept (default %(default)s)")
        grad.add_argument("--projection-dim", type=_positive, default=D.projection_dim,
                          help="values per parameter tensor for the projected strategy (default %(default)s)")
        grad.add_argument("--include-embeddings", action="store_true",
                          help="include token/position embeddings (and a tied LM head)")
        grad.add_argument("--gradient-dtype", choices=["float32", "float16"], default=D.gradient_dtype,
                          help="storage of full differentials on disk (default %(default)s)")
        ftgd = parser.add_argument_group("FTGD fine-tuning (transfer, lookahead)")
        ftgd.add_argument("--ftgd-lr", type=float, default=D.ftgd_lr, help="Adam learning rate (default %(default)s)")
        ftgd.add_argument("--ftgd-steps", type=_positive, default=D.ftgd_steps,
                          help="most steps per task (default %(default)s)")
        ftgd.add_argument("--ftgd-batch", type=_positive, default=D.ftgd_batch, help="pairs per step (default %(default)s)")
        ftgd.add_argument("--ftgd-eval-every", type=_positive, default=D.ftgd_eval_every,
                          help="validate every N steps (default %(default)s)")
        ftgd.add_argument("--ftgd-patience", type=_positive, default=D.ftgd_patience,
                          help="stop after N validations without improvement (default %(default)s)")
        ftgd.add_argument("--lookahead-steps", type=_positive, default=D.lookahead_steps,
                          help="FTGD steps per source for lookahead (default %(default)s)")
        ftgd.add_argument("--transfer-baseline", action="store_true",
                          help="also tune with the full gradient (no mask), for comparison")
        ftgd.add_argument("--cka-reference", metavar="MODEL",
                          help="cka: also compare with this model or checkpoint on the same probe set")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        fields = RunConfig.__dataclass_fields__
        config = RunConfig(**{k: v for k, v in vars(args).items() if k in fields})
        results = run(harness, config)
        tasks = results["tasks"]
        accs = [t["accuracy"] for t in tasks.values()]
        print(f"{len(tasks)} tasks, mean accuracy {sum(accs) / len(accs):.4f}; "
              f"wrote {config.output / 'results.json'}")
        return 0


class TasksCommand:
    name = "tasks"
    help = "list tasks: name, phenomenon, field, source"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("globs", nargs="?", type=_globs, default=["*"],
                            help="comma-separated globs (default: all)")
        parser.add_argument("--json", action="store_true", help="print JSON lines")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        for task in harness.tasks.select(args.globs):
            if args.json:
                print(json.dumps({"name": task.name, "phenomenon": task.phenomenon,
                                  "field": task.field, "group": task.group, "source": task.source}))
            else:
                print(f"{task.name}\t{task.phenomenon}\t{task.field}\t{task.source}")
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


CORE_COMMANDS = (RunCommand(), TasksCommand(), PluginsCommand(), MetricsCommand(), YamlPathCommand())


