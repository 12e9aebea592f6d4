"""The ``compare`` and ``sweep`` commands: task spaces across runs (checkpoints, model sizes).

``compare DIR1 DIR2 ...`` relates the runs in order and tests the paper's claims on them (see
comparison.py for what it computes and comparison.json); ``sweep`` runs ``run`` once per
revision or model into ``OUT/<label>/`` (skipping runs already done), then compares them into ``OUT``;
``sweep --emit slurm|ray|commands`` writes those runs as jobs instead (sweep_jobs.py).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lingspace_harness import Harness, UserError, hookimpl, main
from lingspace_harness.arguments import comma_list, positive_int
from lingspace_harness.models import split_revision

from .claims import ORDERS
from .comparison import write_comparison
from .sweep_jobs import EMIT_FILES, finish_argvs, job_argvs, next_steps, write_jobs


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
    parser.add_argument(
        "--allow-same-model",
        action="store_true",
        help="compare runs of one model (e.g. other seeds or tasks); by default two runs with the same "
        "model fingerprint are refused, as no trajectory",
    )


def _compare_argv(args: argparse.Namespace, labels: list[str]) -> list[str]:
    """``args``' compare options (those of ``_compare_options``) as flags, for ``sweep --emit``'s ``compare``."""
    argv = ["--output", str(args.output), "--labels", ",".join(labels), "--permutations", str(args.permutations)]
    argv += ["--seed", str(args.seed), "--order-by", args.order_by, "--bootstraps", str(args.bootstraps)]
    for name in args.controls:
        argv += ["--control", name]
    for path in args.hypothesis_files:
        argv += ["--hypothesis", str(path)]
    return argv + (["--allow-same-model"] if args.allow_same_model else [])


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
    help = "run once per revision or model into OUT/<label>/ (resumable), then compare the runs; or --emit them as jobs"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--revisions", type=comma_list, help="comma-separated revisions of the run's --model")
        which.add_argument(
            "--models", type=comma_list, help="comma-separated models, e.g. MODEL@REVISION (instead of run's --model)"
        )
        parser.add_argument(
            "--output", type=Path, required=True, metavar="OUT", help="OUT/<label>/ per run, OUT/comparison.json"
        )
        _compare_options(parser)
        parser.add_argument(
            "--emit",
            choices=sorted(EMIT_FILES),
            help="load nothing: write the runs as jobs into OUT (slurm: a job array OUT/sweep.sbatch; ray: "
            "OUT/sweep-ray.sh, a `run --executor ray` per run; commands: OUT/sweep-jobs.txt, one a line) "
            "and OUT/sweep-finish.sh (merge, then compare)",
        )
        parser.add_argument(
            "--shards",
            type=positive_int,
            metavar="N",
            help="with --emit slurm|commands: N jobs per run (`run --shard I/N`), merged by sweep-finish.sh",
        )
        parser.add_argument(
            "run_args",
            nargs=argparse.REMAINDER,
            metavar="-- RUN OPTIONS",
            help="options for each run (as for `run`), after --",
        )

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        runs = _sweep_runs(args)
        labels = [label for label, _ in runs]
        if args.emit:
            jobs = job_argvs([argv for _, argv in runs], args.shards, ray=args.emit == "ray")
            finish = finish_argvs([args.output / label for label in labels], args.shards, _compare_argv(args, labels))
            print(next_steps(args.emit, write_jobs(args.emit, args.output, jobs, finish), len(jobs)))
            return 0
        for label, argv in runs:
            print(f"{label}: running into {args.output / label} (a finished run of the same config resumes at once)")
            code = main(argv)
            if code:
                return code
        write_comparison(harness, [args.output / label for label in labels], args.output, labels, args)
        return 0


def _sweep_runs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """Each run's label and ``run`` argv (into ``OUT/<label>``); one-line errors before any run."""
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
    for value in args.models or []:  # e.g. a local directory with @REVISION: refused before any run
        split_revision(value, what="sweep --models")
    flags = {a.split("=", 1)[0] for a in run_args}
    if "--output" in flags:
        raise UserError("sweep: do not pass --output in the run options; each run goes to OUT/<label>/")
    if args.models and "--model" in flags:
        raise UserError("sweep: --models replaces the run's --model; leave it out of the run options")
    if args.revisions and "--revision" in flags:
        raise UserError("sweep: --revisions replaces the run's --revision; leave it out of the run options")
    if "--shard" in flags:
        raise UserError("sweep: leave --shard out of the run options; `sweep --emit slurm --shards N` shards each run")
    _check_emit(args, flags)
    key = "--model" if args.models else "--revision"
    return [
        (label, ["run", *run_args, key, v, "--output", str(args.output / label)]) for v, label in zip(values, labels)
    ]


def _check_emit(args: argparse.Namespace, flags: set[str]) -> None:
    """Refuse what ``--emit``/``--shards`` cannot honour, before anything is written."""
    if args.shards is not None and args.emit not in ("slurm", "commands"):
        raise UserError("sweep: --shards N needs --emit slurm or --emit commands (Ray spreads each run's units itself)")
    if args.emit and args.revisions and "--model" not in flags:  # a serial run says so at once; jobs only later
        raise UserError("sweep: --revisions are of the run's --model; give --model in the run options")
    if args.emit == "ray" and "--executor" in flags:
        raise UserError("sweep: --emit ray sets each run's --executor; leave it out of the run options")


@hookimpl
def lingspace_register_commands(register):
    register(CompareCommand())
    register(SweepCommand())
