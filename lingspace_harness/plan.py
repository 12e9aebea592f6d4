"""What a run knows before any data or model loads (:class:`lingspace_harness.RunPlan`): its
plugins, config, plugins' options and which metric or strategy provides each capability."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import RunConfig
from .errors import UserError
from .options import plugin_options
from .plugins import Harness
from .protocols import GradientStrategy, Metric

__all__ = ["Plan", "find_plugin"]


def find_plugin(harness: Harness, name: str) -> Any:
    """The plugin object (metric, strategy, reporter, ...) registered as ``name``, or None."""
    for registry in harness.registries.values():
        if name in registry:
            return registry.get(name)
    return None


@dataclass(frozen=True)
class Plan:
    """A run before it loads anything; :class:`lingspace_harness.context.Run` answers the same
    questions through its plan."""

    harness: Harness
    config: RunConfig
    providers: Mapping[str, Metric | GradientStrategy]

    def plugin(self, name: str) -> Any:
        """The plugin object registered as ``name`` (a UserError if there is none)."""
        found = find_plugin(self.harness, name)
        if found is None:
            raise UserError(f"no plugin object is named {name!r}")
        return found

    def options(self, plugin: str) -> Any:
        """A plugin's options (its ``Options`` dataclass, or a dict), from the run's config (the
        executor's from ``config.executor_options``)."""
        c = self.config
        values = c.executor_options if plugin == c.executor else c.options.get(plugin, {})
        return plugin_options(self.plugin(plugin), values, c.seed)

    def provider(self, capability: str) -> Metric | GradientStrategy:
        """The metric or gradient strategy that provides ``capability`` to this run."""
        try:
            return self.providers[capability]
        except KeyError as exc:
            raise UserError(f"nothing in this run provides {capability!r}") from exc
