"""Tasks (a phenomenon's minimal pairs) and their deterministic splits."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from .errors import DataError, UserError
from .pairs import MinimalPair

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["select_tasks", "split_pairs", "task_delimiter", "task_source"]

if TYPE_CHECKING:
    from .registry import Registry

#: Default split fractions (train, validation, test). BLiMP's 1,000 pairs give 400/100/500.
SPLIT_FRACTIONS = (0.4, 0.1, 0.5)
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataOptions:
    """Options a task's loader (or a task source) may use: ``data_dir`` comes from ``--data-dir``,
    ``include_paths`` (directories of task definitions) from ``--include-path``."""

    data_dir: Path | None = None
    include_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Task:
    """A minimal-pair task registered by a phenomenon plugin.

    ``load(options)`` returns every pair of the task (validated, e.g. with
    :func:`lingspace_harness.read_pairs_jsonl`); the harness splits them.
    ``group`` is an optional coarser label (BLiMP: the paper's 12 phenomena).
    ``source`` says where the pairs come from; a task whose data depends on the options
    (e.g. ``--data-dir``) also gives ``source_for(options)``, see :func:`task_source`.
    ``delimiter`` comes before each sentence when it is scored (after the prefix token):
    a space, as in lm-eval's BLiMP, or e.g. ``""`` (an lm-eval task's ``target_delimiter``).
    """

    name: str
    phenomenon: str
    field: str
    source: str
    load: Callable[[DataOptions], Sequence[MinimalPair]] = dataclasses.field(repr=False, compare=False)
    group: str | None = None
    description: str = ""
    source_for: Callable[[DataOptions], str] | None = dataclasses.field(default=None, repr=False, compare=False)
    delimiter: str = " "


def task_source(task: Task, options: DataOptions) -> str:
    """Where ``task``'s pairs come from under ``options`` (results.json's ``source``):
    ``task.source_for(options)`` if the task has it, else its static ``task.source``."""
    source_for = getattr(task, "source_for", None)  # duck-typed tasks may lack it
    return task.source if source_for is None else source_for(options)


def task_delimiter(task: Task | None) -> str:
    """What ``task``'s sentences are scored after (``Task.delimiter``; a space if it has none)."""
    return getattr(task, "delimiter", " ")  # duck-typed tasks may lack it


@runtime_checkable
class TaskSource(Protocol):
    """Finds tasks at run time. ``--tasks NAME:spec`` goes to the source named NAME, and a spec
    without a known prefix to the source whose ``claims(spec)`` is true (e.g. a file path).
    ``resolve`` gets all of a selection's specs for this source at once and returns their Tasks
    (loading pairs lazily, in ``Task.load``); a spec that matches nothing raises UserError."""

    name: str
    description: str

    def claims(self, spec: str) -> bool: ...

    def resolve(self, specs: list[str], options: DataOptions) -> list[Task]: ...


def select_tasks(
    tasks: Registry, sources: Registry, patterns: list[str], options: DataOptions = DataOptions()
) -> list[Task]:
    """The tasks ``--tasks`` names: globs over registered tasks, and specs for task sources
    (``NAME:spec``, or a spec a source claims). Two tasks of one name are an error, and so is
    a selection of no task (no pattern at all, or a source that finds none)."""
    if not patterns:
        raise UserError(
            "the task selection names no task; give comma-separated globs, e.g. 'blimp_*' "
            "(see `lingspace-harness tasks`)"
        )
    order: list[tuple[str, str]] = []  # ("glob", pattern) or ("source", name), first use only
    specs: dict[str, list[str]] = {}
    for pattern in patterns:
        prefix, sep, rest = pattern.partition(":")
        if sep and prefix in sources:
            name, spec = prefix, rest
        else:
            claimants = [s.name for s in sources if s.claims(pattern)]
            if len(claimants) > 1:
                raise UserError(
                    f"several task sources accept {pattern!r}; choose one: "
                    + ", ".join(f"{c}:{pattern}" for c in claimants)
                )
            if not claimants:
                order.append(("glob", pattern))
                continue
            name, spec = claimants[0], pattern
        if name not in specs:
            order.append(("source", name))
        specs.setdefault(name, []).append(spec)
    chosen: dict[str, Task] = {}
    origin: dict[str, str] = {}
    for kind, key in order:
        found = tasks.select([key]) if kind == "glob" else sources.get(key).resolve(specs[key], options)
        where = f"task source {key!r}" if kind == "source" else "the registered tasks"
        for task in found:
            if task.name in chosen and chosen[task.name] is not task:
                raise UserError(
                    f"two selected tasks are named {task.name!r} (from {origin[task.name]} "
                    f"and from {where}); select only one of them"
                )
            chosen[task.name], origin[task.name] = task, where
    if not chosen:
        raise UserError(f"--tasks {','.join(patterns)!r} selects no task (see `lingspace-harness tasks`)")
    return list(chosen.values())


@dataclass
class TaskData:
    """A task with its pairs split into train, validation and test."""

    task: Task
    train: list[MinimalPair]
    validation: list[MinimalPair]
    test: list[MinimalPair]

    def split(self, name: str) -> list[MinimalPair]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        return {f"n_{s}": len(self.split(s)) for s in SPLITS}


def split_pairs(
    pairs: Sequence[MinimalPair],
    task_name: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
    limit: int | None = None,
) -> tuple[list[MinimalPair], list[MinimalPair], list[MinimalPair]]:
    """Shuffle with a generator seeded by ``(seed, crc32(task_name))`` and cut by ``fractions``.

    A task's split depends only on its own pairs, its name and the seed, not on which
    other tasks run. ``limit`` caps each split at that many pairs.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1: {fractions}")
    rng = np.random.default_rng([seed, zlib.crc32(task_name.encode())])
    order = rng.permutation(len(pairs))
    n = len(pairs)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    cuts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    parts = tuple([pairs[i] for i in idx][:limit] if limit is not None else [pairs[i] for i in idx] for idx in cuts)
    return parts  # type: ignore[return-value]


def load_task_data(
    task: Task,
    options: DataOptions,
    seed: int = 0,
    limit: int | None = None,
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
) -> TaskData:
    """Load, validate and split one task. An empty test split is an error."""
    pairs = list(task.load(options))
    if not pairs:
        raise DataError(f"task {task.name!r} has no valid minimal pairs")
    train, validation, test = split_pairs(pairs, task.name, seed=seed, fractions=fractions, limit=limit)
    if not test:
        raise DataError(f"task {task.name!r} has too few pairs ({len(pairs)}) for a test split")
    return TaskData(task, train, validation, test)
