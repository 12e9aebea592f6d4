"""Hook specifications: what a plugin can add. Names carry the ``lingspace_`` prefix.

Every ``lingspace_register_*`` hook receives a ``register`` callback. Call it once per
thing the plugin adds; the harness records which plugin registered what, and rejects
a name that two plugins both claim. An object without an attribute or method that its
protocol requires (e.g. a metric without ``compute``) is skipped with one warning line.
"""

from __future__ import annotations

from collections.abc import Callable

from pluggy import HookimplMarker, HookspecMarker

from .models import ModelLoader
from .protocols import Command, Executor, GradientStrategy, Hypothesis, Metric, Reporter, SpaceBuilder
from .tasks import Task, TaskSource

PROJECT = "lingspace_harness"

hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def lingspace_register_phenomena(register: Callable[[Task], None]) -> None:
    """Add minimal-pair tasks.

    Call ``register(task)`` with a :class:`lingspace_harness.Task` for each task. A task
    names its phenomenon and field, and loads its pairs lazily through ``task.load``.
    """


@hookspec
def lingspace_register_task_sources(register: Callable[[TaskSource], None]) -> None:
    """Add task sources: tasks found at run time rather than registered up front.

    Call ``register(source)`` with a :class:`lingspace_harness.TaskSource`. ``--tasks NAME:spec``
    goes to the source named NAME (e.g. ``lm_eval:blimp_nl*``), and a spec that a source
    ``claims`` (e.g. a YAML path) to that source; it returns :class:`lingspace_harness.Task` objects.
    """


@hookspec
def lingspace_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    """Add ways to load a model from a ``--model`` string.

    Call ``register(loader)`` with a :class:`lingspace_harness.ModelLoader`. The user
    picks a loader with ``NAME:spec``, or the harness asks each loader's ``claims(spec)``.
    """


@hookspec
def lingspace_register_gradient_strategies(register: Callable[[GradientStrategy], None]) -> None:
    """Add gradient-differential strategies (``full``, ``topk``, ``projected``, ...).

    Call ``register(strategy)`` with a :class:`lingspace_harness.GradientStrategy`.
    """


@hookspec
def lingspace_register_metrics(register: Callable[[Metric], None]) -> None:
    """Add metrics, chosen with ``--metric``.

    Call ``register(metric)`` with a :class:`lingspace_harness.Metric`. A metric fills
    per-task fields of results.json, or returns a task space (an N x N matrix).
    """


@hookspec
def lingspace_register_space_builders(register: Callable[[SpaceBuilder], None]) -> None:
    """Add analyses of task spaces: hypothesis tests, clustering, comparisons.

    Call ``register(builder)`` with a :class:`lingspace_harness.SpaceBuilder`. Its output
    lands in results.json under ``analysis[builder.name]``.
    """


@hookspec
def lingspace_register_hypotheses(register: Callable[[Hypothesis], None]) -> None:
    """Add hypothesis spaces that analyses test task spaces against.

    Call ``register(hypothesis)`` with a :class:`lingspace_harness.Hypothesis`: given the
    tasks of a space (and results.json), it returns an N x N matrix of predicted similarity,
    or None where it does not apply (e.g. tasks without the labels it needs).
    """


@hookspec
def lingspace_register_executors(register: Callable[[Executor], None]) -> None:
    """Add executors that run a run's units of work (serial, ray, ...), chosen with ``--executor``.

    Call ``register(executor)`` with a :class:`lingspace_harness.Executor`. The units it
    runs write their results into the run's unit cache; the driver assembles results.json.
    """


@hookspec
def lingspace_register_reporters(register: Callable[[Reporter], None]) -> None:
    """Add reporters, which turn a finished results.json into other files.

    Call ``register(reporter)`` with a :class:`lingspace_harness.Reporter`.
    """


@hookspec
def lingspace_register_commands(register: Callable[[Command], None]) -> None:
    """Add CLI sub-commands, as in ``lingspace-harness NAME ...``.

    Call ``register(command)`` with a :class:`lingspace_harness.Command`.
    """
