"""``sweep --emit``: a sweep's runs as jobs for SLURM, Ray or any batch scheduler, written
without loading any model.

Each job is one ``lingspace-harness`` command line: a run of one revision or model into
``OUT/<label>/``, or, with ``--shards N``, shard I/N of it (``run --shard I/N``); with Ray each
run is one ``run --executor ray``. The finish step merges each sharded run (``merge OUT/<label>``)
and then compares the runs in order (``compare``) into ``OUT``. Every file is a plain shell script
(or, for ``commands``, one command a line) that first changes to the directory the sweep was
emitted from, so relative paths in the run options hold; it is deterministic, byte for byte.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from lingspace_harness.results import write_atomic

#: What ``sweep --emit`` writes, and into which file of OUT.
EMIT_FILES = {"slurm": "sweep.sbatch", "ray": "sweep-ray.sh", "commands": "sweep-jobs.txt"}
FINISH_FILE = "sweep-finish.sh"
PROGRAM = "lingspace-harness"


def job_argvs(runs: Sequence[Sequence[str]], shards: int | None, ray: bool) -> list[list[str]]:
    """The argv of every job, in array order: each run (``ray``: with ``--executor ray``), or
    each of its ``shards`` slices (run r's shard i is job ``r * shards + i``)."""
    if ray:
        return [[*run, "--executor", "ray"] for run in runs]
    if shards is None:
        return [list(run) for run in runs]
    return [[*run, "--shard", f"{i}/{shards}"] for run in runs for i in range(shards)]


def finish_argvs(dirs: Sequence[Path], shards: int | None, compare: Sequence[str]) -> list[list[str]]:
    """What follows the jobs: ``merge`` of each sharded run, then ``compare`` of the runs in order
    (``compare`` holds its options, ``--output`` included)."""
    merges = [["merge", str(d)] for d in dirs] if shards is not None else []
    return [*merges, ["compare", *map(str, dirs), *compare]]


def _line(argv: Sequence[str]) -> str:
    return shlex.join([PROGRAM, *argv])


def _submit(jobs: Path, finish: Path) -> str:
    """The shell line that submits the array, and the finish step once every array task has succeeded."""
    jobs_arg, finish_arg = shlex.quote(str(jobs)), shlex.quote(str(finish))
    return f"jid=$(sbatch --parsable {jobs_arg}) && sbatch --dependency=afterok:$jid {finish_arg}"


def _script(header: Sequence[str], cwd: Path, body: Sequence[str]) -> list[str]:
    """A bash script: the ``#`` header (comments, ``#SBATCH`` lines), then strict mode, ``cd``, body."""
    lines = ["#!/bin/bash", *header, "set -euo pipefail", f"cd {shlex.quote(str(cwd))}", *body]
    return [line + "\n" for line in lines]


def _slurm(jobs: list[list[str]], out: Path, logs: Path, cwd: Path) -> list[str]:
    """The array script: task I runs job I (a ``case`` arm each), an unknown I is an error."""
    last = len(jobs) - 1
    submit = _submit(out / EMIT_FILES["slurm"], out / FINISH_FILE)
    header = [
        f"# {len(jobs)} jobs of `{PROGRAM} sweep` as a SLURM array; then {FINISH_FILE} merges and compares.",
        f"# Submit (add --partition, --gres, --time ... on the sbatch command line): {submit}",
        "#SBATCH --job-name=lingspace-sweep",
        f"#SBATCH --array=0-{last}",
        f"#SBATCH --output={logs}/sweep-%A_%a.out",
    ]
    arms = [f"  {i}) {_line(argv)} ;;" for i, argv in enumerate(jobs)]
    body = [
        'case "${SLURM_ARRAY_TASK_ID:?not a SLURM array task: submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in',
        *arms,
        f'  *) echo "error: no job $SLURM_ARRAY_TASK_ID in this sweep (0-{last})" >&2; exit 2 ;;',
        "esac",
    ]
    return _script(header, cwd, body)


def _ray(jobs: list[list[str]], finish: list[list[str]], cwd: Path) -> list[str]:
    header = [
        f"# `{PROGRAM} sweep` on Ray: one `run --executor ray` per run (its units spread over the",
        "# cluster; pass --ray-address etc. in the sweep's run options), then the comparison.",
    ]
    return _script(header, cwd, [_line(argv) for argv in [*jobs, *finish]])


def _finish(finish: list[list[str]], logs: Path, cwd: Path) -> list[str]:
    header = [
        f"# After every job of `{PROGRAM} sweep`: merge each run's shards (if any), then compare the runs.",
        "#SBATCH --job-name=lingspace-sweep-finish",
        f"#SBATCH --output={logs}/finish-%j.out",
    ]
    return _script(header, cwd, [_line(argv) for argv in finish])


def write_jobs(emit: str, out: Path, jobs: list[list[str]], finish: list[list[str]]) -> list[Path]:
    """Write ``emit``'s job file and the finish script into ``out``; returns their paths."""
    cwd = Path.cwd()
    logs = cwd / out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if emit == "slurm":
        text = _slurm(jobs, out, logs, cwd)
    elif emit == "ray":
        text = _ray(jobs, finish, cwd)
    else:  # one command a line, each independent: `parallel < FILE`, `xargs`, another scheduler's array
        text = [f"cd {shlex.quote(str(cwd))} && {_line(argv)}\n" for argv in jobs]
    paths = [out / EMIT_FILES[emit], out / FINISH_FILE]
    for path, lines in zip(paths, (text, _finish(finish, logs, cwd))):
        write_atomic(path, lines)
        if path.suffix != ".txt":
            os.chmod(path, 0o755)
    return paths


def next_steps(emit: str, paths: Sequence[Path], n_jobs: int) -> str:
    """What to do with the files ``write_jobs`` wrote (printed by ``sweep --emit``)."""
    jobs, finish = paths
    if emit == "slurm":
        return (
            f"wrote {jobs} ({n_jobs} array tasks) and {finish}; submit both, the second after the first:\n"
            f"  {_submit(jobs, finish)}"
        )
    if emit == "ray":
        return f"wrote {jobs} ({n_jobs} Ray runs, then the comparison); run it where Ray is reachable:\n  bash {jobs}"
    return (
        f"wrote {jobs} ({n_jobs} jobs, one a line; any order, on machines sharing {jobs.parent}); "
        f"when all are done:\n  bash {finish}"
    )
