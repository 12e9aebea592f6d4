"""Benchmark results as JSON beside the commit that made them.

A benchmark makes a ``Record`` when it starts (the commit is read then) and writes its figures
at the end::

    rec = Record("spaces-ratio", args)          # args: the parsed options, kept as "settings"
    ...
    rec.write({"ratio": 3.1, ...})              # to --json, or results/<benchmark>-<commit>.json

The file holds ``benchmark``, ``argv`` (sys.argv), ``commit`` (``git rev-parse HEAD`` of the
repository this file lives in) and ``dirty`` (tracked files changed; both null outside a git
checkout), ``package`` (the lingspace_harness that ran: path, version, its checkout's commit and
dirty flag: an editable install may live in another checkout), ``started`` and ``finished`` (UTC,
ISO 8601), ``machine`` (platform, processor, python, torch, CPU count, torch threads,
OMP_NUM_THREADS, CUDA device), ``settings`` and ``figures``. Numpy values become numbers and
lists, paths strings, NaN and infinities null. Studies that keep JSON files of their own add
``provenance()`` (the same fields but settings and figures) under a ``provenance`` key.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Where results go unless --json says otherwise; committed with the code they measured.
RESULTS = HERE / "results"


def git_state(where: Path) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked files differ from it) of the git checkout holding
    ``where``; (None, None) outside one, or without git."""

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(where), *argv], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, dirty


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def package() -> dict[str, Any] | None:
    """The lingspace_harness this process imports: where, its version and its checkout's state."""
    try:
        import lingspace_harness
    except ImportError:
        return None
    path = Path(lingspace_harness.__file__).resolve().parent
    commit, dirty = git_state(path)
    return {"path": str(path), "version": lingspace_harness.__version__, "commit": commit, "dirty": dirty}


def machine() -> dict[str, Any]:
    """The machine and the threads the benchmark ran on (read when called: after it set them)."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": None,
        "torch_threads": None,
        "cuda": None,
    }
    try:
        import torch
    except ImportError:
        return facts
    facts["torch"] = torch.__version__
    facts["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        facts["cuda"] = torch.cuda.get_device_name()
    return facts


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars and arrays as numbers and lists, paths as
    strings, NaN and infinities as None (undefined, never a number)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)  # Path and anything else


def provenance(started: str | None = None, commit: tuple[str | None, bool | None] | None = None) -> dict[str, Any]:
    """The fields that say what made a result: command line, commit, package, times, machine."""
    commit_, dirty = commit or git_state(HERE)
    return {
        "argv": list(sys.argv),
        "commit": commit_,
        "dirty": dirty,
        "package": package(),
        "started": started or utc_now(),
        "finished": utc_now(),
        "machine": machine(),
    }


def default_path(benchmark: str, commit: str | None, directory: Path | None = None) -> Path:
    """``directory/<benchmark>-<short commit>.json`` (``directory`` by default ``RESULTS``;
    ``nocommit`` outside git); a file already there is kept: the next free ``-2``, ``-3``, ... is used."""
    directory = directory or RESULTS
    stem = f"{benchmark}-{commit[:7] if commit else 'nocommit'}"
    path, n = directory / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.json"
    return path


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        type=Path,
        help="write the results here (default: benchmarks/results/<benchmark>-<commit>.json)",
    )


class Record:
    """One benchmark run: made when it starts, written with its figures when it ends."""

    def __init__(self, benchmark: str, settings: argparse.Namespace | dict[str, Any] | None = None) -> None:
        self.benchmark = benchmark
        self.settings = dict(vars(settings) if isinstance(settings, argparse.Namespace) else settings or {})
        self.started = utc_now()
        self.commit = git_state(HERE)

    def document(self, figures: dict[str, Any]) -> dict[str, Any]:
        return plain(
            {
                "benchmark": self.benchmark,
                **provenance(self.started, self.commit),
                "settings": self.settings,
                "figures": figures,
            }
        )

    def write(self, figures: dict[str, Any], path: Path | None = None) -> Path:
        """Write the record to ``path``, else to the settings' ``json``, else to the default
        place; print and return where."""
        path = path or self.settings.get("json") or default_path(self.benchmark, self.commit[0])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document(figures), indent=1, allow_nan=False) + "\n")
        print(f"results: {path}")
        return path
