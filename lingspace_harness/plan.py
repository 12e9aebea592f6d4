"""What a run is, resolved once before any data or model loads (:class:`lingspace_harness.RunPlan`):
its metrics and the helpers and providers they need, the gradient strategies they read, the
model loader, executor, space builders and reporters, and the validated options of every plugin,
keyed by (kind, name). Checks, the output directory, workers, ``assemble``, builders and
reporters all read this one plan (``resolve.resolve_plan`` builds it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .capabilities import HasOptions
from .config import RunConfig
from .errors import UserError
from .kinds import KINDS, OPTIONED
from .options import Options, options_record
from .plugins import Harness
from .protocols import Executor, GradientStrategy, Metric, Reporter, SpaceBuilder

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    """A run before it loads anything. ``config`` is what was asked, never changed; ``metrics``
    are those asked for (and those every run computes), then the ``helpers`` that join only as
    providers; ``given`` is the config's plugin options by kind (an older record's read so);
    ``all_options`` holds every optioned plugin's validated options by (kind, name);
    ``learners`` names the run's metrics that learn from gradients (``resolve.learns``)."""

    harness: Harness
    config: RunConfig
    providers: Mapping[str, Metric | GradientStrategy] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    helpers: tuple[Metric, ...] = ()
    strategies: tuple[str, ...] = ()
    given: Options = field(default_factory=dict)
    all_options: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    loader: Any = None
    model_spec: str = ""
    scores_only: bool = False
    learners: tuple[str, ...] = ()
    executor: Executor | None = None
    builders: tuple[SpaceBuilder, ...] = ()
    reporters: tuple[Reporter, ...] = ()

    def plugin(self, name: str, kind: str | None = None) -> Any:
        """The plugin object registered as ``name`` (of ``kind``, or the first kind that has the
        name, in ``kinds.KINDS`` order); a UserError if there is none."""
        for k in KINDS if kind is None else [k for k in KINDS if k.id == kind]:
            registry = self.harness.registry(k.id)
            if name in registry:
                return registry.get(name)
        raise UserError(f"no plugin object is named {name!r}")

    def options(self, plugin: str, kind: str | None = None) -> Any:
        """A plugin's options (its ``Options`` dataclass, or a dict), validated when the plan was
        resolved. Without ``kind``, the first optioned kind with a plugin of that name; ``{}`` for
        a plugin without options."""
        for k in OPTIONED if kind is None else (kind,):
            if (k, plugin) in self.all_options:
                return self.all_options[(k, plugin)]
        self.plugin(plugin, kind)  # a UserError if there is no such plugin
        return {}  # a plugin without options of its own

    def provider(self, capability: str) -> Metric | GradientStrategy:
        """The metric or gradient strategy that provides ``capability`` to this run."""
        try:
            return self.providers[capability]
        except KeyError as exc:
            raise UserError(f"nothing in this run provides {capability!r}") from exc

    @property
    def learns(self) -> bool:
        """Whether the run needs gradients (a metric of it learns)."""
        return bool(self.learners)

    @property
    def run_metrics(self) -> list[Metric]:
        """Every metric the run computes: those asked for, then the helpers."""
        return [*self.metrics, *self.helpers]

    def used(self) -> list[tuple[str, str]]:
        """(kind, name) of every plugin other than the executor that shapes this run's results."""
        metrics = self.run_metrics  # a providing metric is one of them (a helper if not asked for)
        names = [("metric", m.name) for m in metrics] + [("gradient_strategy", s) for s in self.strategies]
        names += [("gradient_strategy", p.name) for p in self.providers.values() if not any(p is m for m in metrics)]
        names += [("reporter", r.name) for r in self.reporters] + [("space_builder", b.name) for b in self.builders]
        return list(dict.fromkeys(names))

    def options_record(self) -> Options:
        """What run.json and results.json record under ``config.options``: the options of every
        plugin the run uses, by kind (see ``options.options_record``)."""
        out: Options = {}
        for kind, name in self.used():
            if (kind, name) in self.all_options and (
                name in self.given.get(kind, {}) or _has_options(self, kind, name)
            ):
                out.setdefault(kind, {})[name] = options_record(self.all_options[(kind, name)])
        return out

    def config_json(self) -> dict[str, Any]:
        """The config as run.json and results.json record it (the options as the run uses them)."""
        return {**self.config.to_json(), "options": self.options_record()}

    def execution_json(self) -> dict[str, Any]:
        """How the units run: the executor, its options as filled (unset ones left out), the shard."""
        out = self.config.execution_json()
        if self.executor is not None:
            filled = options_record(self.options(self.executor.name, "executor"))
            out["options"] = {k: v for k, v in filled.items() if v is not None}
        return out


def _has_options(plan: Plan, kind: str, name: str) -> bool:
    return isinstance(plan.plugin(name, kind), HasOptions)
