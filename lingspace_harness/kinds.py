"""The kinds of plugin object, in one table: each kind's hook, registry, contract and whether its
objects may add ``run`` options. Hook names, the harness's registries, option groups, the
options recorded in run.json and the messages all follow from :data:`KINDS`."""

from __future__ import annotations

from dataclasses import dataclass

from .models import ModelLoader
from .protocols import Command, Executor, GradientStrategy, Hypothesis, Metric, Reporter, SpaceBuilder
from .tasks import Task, TaskSource

__all__ = ["KINDS", "OPTIONED", "Kind", "kind_of"]


@dataclass(frozen=True)
class Kind:
    """One kind of plugin object.

    ``id``: the key of its registry and of its options in run.json (``config.options[id][name]``);
    ``hook``: the ``lingspace_register_*`` hook that registers it; ``contract``: the protocol or
    dataclass its objects must match; ``options``: whether its objects may add ``run`` options
    (``add_arguments`` and ``Options``)."""

    id: str
    hook: str
    contract: type
    options: bool = False

    @property
    def label(self) -> str:
        """The kind in messages: ``gradient strategy``."""
        return self.id.replace("_", " ")


#: Every kind, in the order registries fill, options are looked up by bare name and help shows them.
KINDS: tuple[Kind, ...] = (
    Kind("task", "lingspace_register_phenomena", Task),
    Kind("task_source", "lingspace_register_task_sources", TaskSource),
    Kind("model_loader", "lingspace_register_model_loaders", ModelLoader),
    Kind("gradient_strategy", "lingspace_register_gradient_strategies", GradientStrategy, options=True),
    Kind("metric", "lingspace_register_metrics", Metric, options=True),
    Kind("space_builder", "lingspace_register_space_builders", SpaceBuilder, options=True),
    Kind("hypothesis", "lingspace_register_hypotheses", Hypothesis),
    Kind("executor", "lingspace_register_executors", Executor, options=True),
    Kind("reporter", "lingspace_register_reporters", Reporter, options=True),
    Kind("command", "lingspace_register_commands", Command),
)
#: The kinds whose objects may add ``run`` options, by id.
OPTIONED: tuple[str, ...] = tuple(k.id for k in KINDS if k.options)


def kind_of(kind_id: str) -> Kind:
    """The kind with id ``kind_id`` (a ValueError for an unknown id: a programming mistake)."""
    for kind in KINDS:
        if kind.id == kind_id:
            return kind
    raise ValueError(f"unknown plugin kind {kind_id!r}; known: {', '.join(k.id for k in KINDS)}")
