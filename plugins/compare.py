"""The ``compare`` and ``sweep`` commands: task spaces across runs (checkpoints, model sizes).

``compare DIR1 DIR2 ...`` relates the runs in order and tests the paper's claims on them (see
comparison.py for what it computes and comparison.json); ``sweep`` runs ``run`` once per
revision or model into ``OUT/<label>/`` (skipping runs already done), then compares them into ``OUT``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lingspace_harness import Harness, UserError, hookimpl, main
from lingspace_harness.arguments import comma_list, positive_int

from .claims import ORDERS
from .comparison import write_comparison


def _compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels", type=comma_list, help="comma-separated run labels (default: revisions or directory names)"
    )
    parser.add_argument(
        "--permutations", type=positive_int, default=10000, help="Mantel permutations (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="permutation seed (default 0)")
    parser.add_argument(
        "--order-by",
        choices=ORDERS,
        default="given",
        help="run order: as given, by the revision's step<N>, or by model.n_params",
    )
    parser.add_argument(
        "--bootstraps",
        type=positive_int,
        default=1000,
        help="task-bootstrap resamples for the claims' intervals (default %(default)s)",
    )
    parser.add_argument(
        "--control",
        dest="controls",
        action="append",
        default=[],
        metavar="NAME",
        help="a hypothesis to control for in partial Mantel tests (besides lexical); repeatable",
    )
    parser.add_argument(
        "--hypothesis",
        dest="hypothesis_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a hypothesis file (as for analyse) to test claims on; repeatable",
    )


class CompareCommand:
    name = "compare"
    help = "compare the task spaces of runs (checkpoints, model sizes) in the given order"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run output directories, in order")
        parser.add_argument(
            "--output",
            type=Path,
            default=Path("comparison"),
            metavar="OUT",
            help="where comparison.json goes (default: ./comparison)",
        )
        _compare_options(parser)

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        write_comparison(harness, args.dirs, args.output, args.labels, args)
        return 0


# -- sweep ---------------------------------------------------------------------------------


def _label(value: str) -> str:
    name = value.rstrip("/").rsplit("/", 1)[-1] or value
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("._") or "run"


class SweepCommand:
    name = "sweep"
    help = "run once per revision or model into OUT/<label>/ (resumable), then compare the runs"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--revisions", type=comma_list, help="comma-separated revisions of the run's --model")
        which.add_argument("--models", type=comma_list, help="comma-separated models (instead of run's --model)")
        parser.add_argument(
            "--output", type=Path, required=True, metavar="OUT", help="OUT/<label>/ per run, OUT/comparison.json"
        )
        _compare_options(parser)
        parser.add_argument(
            "run_args",
            nargs=argparse.REMAINDER,
            metavar="-- RUN OPTIONS",
            help="options for each run (as for `run`), after --",
        )

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        run_args = list(args.run_args)
        if run_args[:1] == ["--"]:
            run_args = run_args[1:]
        values = args.revisions or args.models
        if len(values) < 2:
            raise UserError("sweep needs at least two revisions or models")
        labels = args.labels or [_label(v) for v in values]
        if len(labels) != len(values):
            raise UserError(f"sweep: {len(labels)} labels for {len(values)} runs")
        if len(set(labels)) != len(labels):
            raise UserError(f"sweep: two runs get the same label ({', '.join(labels)}); name them with --labels")
        flags = {a.split("=", 1)[0] for a in run_args}
        if "--output" in flags:
            raise UserError("sweep: do not pass --output in the run options; each run goes to OUT/<label>/")
        if args.models and "--model" in flags:
            raise UserError("sweep: --models replaces the run's --model; leave it out of the run options")
        if args.revisions and "--revision" in flags:
            raise UserError("sweep: --revisions replaces the run's --revision; leave it out of the run options")
        if "--shard" in flags:
            raise UserError("sweep: --shard is not supported; run the shards and `merge` yourself, then `compare`")
        dirs = []
        for value, label in zip(values, labels):
            out = args.output / label
            extra = ["--model", value] if args.models else ["--revision", value]
            dirs.append(out)
            print(f"{label}: running into {out} (a finished run of the same config resumes at once)")
            code = main(["run", *run_args, *extra, "--output", str(out)])
            if code:
                return code
        write_comparison(harness, dirs, args.output, labels, args)
        return 0


@hookimpl
def lingspace_register_commands(register):
    register(CompareCommand())
    register(SweepCommand())
