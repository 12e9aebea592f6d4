"""What metrics, strategies, space builders, reporters and commands look like.

Plugins return objects with these attributes from their ``register`` calls. Plain
classes or dataclasses work; nothing needs to inherit from these protocols.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .plugins import Harness
    from .runner import RunContext


@dataclass
class Space:
    """A task space: ``matrix[i][j]`` relates ``tasks[i]`` to ``tasks[j]``."""

    tasks: list[str]
    matrix: list[list[float]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        n = len(self.tasks)
        if len(self.matrix) != n or any(len(row) != n for row in self.matrix):
            raise ValueError(f"a space over {n} tasks needs an {n}x{n} matrix")
        return {"tasks": list(self.tasks), "matrix": [[float(v) for v in row] for row in self.matrix],
                **self.extra}


@dataclass
class MetricResult:
    """What a metric adds to results.json: per-task fields, a space, or both."""

    task_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    space: Space | None = None


@runtime_checkable
class Metric(Protocol):
    """A ``--metric``. ``compute`` reads the run (model, task data, cached scores)."""

    name: str
    description: str

    def compute(self, ctx: "RunContext") -> MetricResult: ...


@dataclass(frozen=True)
class GradientOptions:
    """Settings every gradient strategy may read (from ``run``'s options)."""

    topk: float = 0.01
    projection_dim: int = 1024
    include_embeddings: bool = False
    storage_dtype: str = "float32"
    seed: int = 0


@runtime_checkable
class GradientStrategy(Protocol):
    """Reduces a task's flat gradient differential (float32, in ``layout`` order) to what is
    stored for it: a vector (``kind = "vector"``, with ``layer_slices(layout, options)``
    giving each layer's slices of it) or a sorted index mask (``kind = "mask"``). An optional
    ``key(options) -> dict`` names the options its result depends on, so that stored units
    survive changes to the others."""

    name: str
    description: str
    kind: str

    def reduce(self, grad: Any, layout: Any, options: GradientOptions) -> Any: ...


@runtime_checkable
class SpaceBuilder(Protocol):
    """Analyses the spaces of a results dict; the return value lands in ``analysis[name]``."""

    name: str
    description: str

    def build(self, results: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class Reporter(Protocol):
    """Writes files from a finished results dict into ``out_dir``; returns their paths."""

    name: str
    description: str

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]: ...


@runtime_checkable
class Command(Protocol):
    """A CLI sub-command. ``run`` returns the exit code; raise UserError for user mistakes."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, harness: "Harness") -> int: ...
