"""The plugin manager: loads entry points, applies the environment's allow/deny lists,
and fills one :class:`Registry` per ``lingspace_register_*`` hook.

Built-ins are entry points of the ``lingspace-harness`` distribution itself, loaded
exactly like third-party plugins. A plugin that fails to import or register becomes one
warning line (or a :class:`PluginError` with ``strict=True``); the rest still load.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .capabilities import half_protocols, near_misses
from .errors import PluginError
from .kinds import KINDS, OPTIONED, kind_of
from .models import ModelLoader
from .protocols import Command, Executor, GradientStrategy, Hypothesis, Metric, Reporter, SpaceBuilder
from .registry import Contract, Registry
from .tasks import Task, TaskSource

log = logging.getLogger("lingspace_harness")

ENTRY_POINT_GROUP = "lingspace_harness"
BUILTIN_DISTRIBUTION = "lingspace-harness"
LOAD_ENV = "LINGSPACE_LOAD_PLUGINS"
DISABLE_ENV = "LINGSPACE_DISABLE_PLUGINS"

#: hook name -> (the kind in messages, what its objects must look like), from ``kinds.KINDS``.
#: What a registered object must have is read off the contract (see Contract.of), and checked in register().
HOOKS: dict[str, tuple[str, type]] = {k.hook: (k.label, k.contract) for k in KINDS}

# Plugins added in-process (tests, notebooks): (name, object). See ``register_plugin``.
_extra_plugins: list[tuple[str, Any]] = []


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Harness:
    """Loaded plugins and what they registered."""

    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo]
    registries: dict[str, Registry[Any]]
    warnings: list[str]

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of a kind, by its id in ``kinds.KINDS`` (``"metric"``)."""
        return self.registries[kind_of(kind).hook]

    def optioned_kind(self, name: str) -> str | None:
        """The first kind that may add options (``kinds.OPTIONED``) with a plugin named ``name``:
        how options recorded before they were kept by kind are read (``options.by_kind``)."""
        return next((k for k in OPTIONED if name in self.registry(k)), None)

    def registries_by_kind(self) -> dict[str, Registry[Any]]:
        """Every registry, by its kind's id (``kinds.KINDS`` order)."""
        return {k.id: self.registries[k.hook] for k in KINDS}

    @property
    def tasks(self) -> Registry[Task]:
        return self.registry("task")

    @property
    def task_sources(self) -> Registry[TaskSource]:
        return self.registry("task_source")

    @property
    def model_loaders(self) -> Registry[ModelLoader]:
        return self.registry("model_loader")

    @property
    def gradient_strategies(self) -> Registry[GradientStrategy]:
        return self.registry("gradient_strategy")

    @property
    def metrics(self) -> Registry[Metric]:
        return self.registry("metric")

    @property
    def space_builders(self) -> Registry[SpaceBuilder]:
        return self.registry("space_builder")

    @property
    def hypotheses(self) -> Registry[Hypothesis]:
        return self.registry("hypothesis")

    @property
    def executors(self) -> Registry[Executor]:
        return self.registry("executor")

    @property
    def reporters(self) -> Registry[Reporter]:
        return self.registry("reporter")

    @property
    def commands(self) -> Registry[Command]:
        return self.registry("command")


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {_norm(v) for v in value.split(",") if v.strip()}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _entry_points() -> list[tuple[md.EntryPoint, md.Distribution]]:
    """Entry points in our group, one distribution per name (the first on sys.path wins)."""
    seen: set[str] = set()
    found = []
    for dist in md.distributions():
        dist_name = _norm(dist.metadata["Name"] or "")
        if dist_name in seen:
            continue
        seen.add(dist_name)
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.append((ep, dist))
    return found


def register_plugin(obj: Any, name: str) -> None:
    """Add a plugin object in-process, for tests and notebooks. Undo with ``unregister_plugin``."""
    _extra_plugins.append((name, obj))


def unregister_plugin(name: str) -> None:
    _extra_plugins[:] = [(n, o) for n, o in _extra_plugins if n != name]


@dataclass
class _Loading:
    """What ``load_harness`` builds up: the plugin manager, the plugins accepted, the warnings."""

    strict: bool
    pm: pluggy.PluginManager = field(init=False)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    def fail(self, message: str, cause: BaseException | None = None) -> None:
        """One warning line, or a PluginError (from ``cause``) with ``strict``."""
        if self.strict:
            raise PluginError(message) from cause
        log.warning(message)
        self.warnings.append(message)

    def add(self, name: str, obj: Any, info: PluginInfo) -> None:
        """Register one plugin object with pluggy, or explain in one line why not."""
        if name in self.plugins:
            self.fail(
                f"plugin {name!r} from {info.distribution} skipped: "
                f"the name is taken by {self.plugins[name].distribution}"
            )
            return
        try:
            self.pm.register(obj, name=name)
            _check_hooks(self.pm, name)
        except Exception as exc:  # pluggy validation errors and anything a plugin raises
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self.fail(f"plugin {name!r} is invalid and was skipped: {exc}", exc)
            return
        info.hooks = sorted(_hooks_of(self.pm, name))
        if not info.hooks:
            self.pm.unregister(name=name)
            self.fail(f"plugin {name!r} implements no lingspace hook (is @hookimpl missing?) and was skipped")
            return
        self.plugins[name] = info


def load_harness(strict: bool = False, env: Mapping[str, str] | None = None) -> Harness:
    """Load every allowed plugin and collect their registrations."""
    env = os.environ if env is None else env
    deny = _names(env.get(DISABLE_ENV)) or set()
    loading = _Loading(strict)
    _load_entry_points(loading, _names(env.get(LOAD_ENV)), deny)
    for name, obj in list(_extra_plugins):
        if _norm(name) not in deny:
            loading.add(name, obj, PluginInfo(name, None, None, False))
    registries = {
        hook: _fill_registry(loading, hook, Registry(kind, Contract.of(spec))) for hook, (kind, spec) in HOOKS.items()
    }
    return Harness(loading.pm, loading.plugins, registries, loading.warnings)


def _load_entry_points(loading: _Loading, allow: set[str] | None, deny: set[str]) -> None:
    """Import and add each entry point the allow/deny lists let through (built-ins ignore ``allow``)."""
    for ep, dist in _entry_points():
        dist_name = dist.metadata["Name"]
        builtin = _norm(dist_name) == BUILTIN_DISTRIBUTION
        keys = {_norm(ep.name), _norm(dist_name)}
        if keys & deny or (not builtin and allow is not None and not keys & allow):
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # plugin isolation: a broken plugin is one line, the rest load
            log.info("plugin %r failed to import:", ep.name, exc_info=exc)  # the traceback, with -v
            loading.fail(
                f"plugin {ep.name!r} ({dist_name} {dist.version}) failed to import: {type(exc).__name__}: {exc}", exc
            )
            continue
        loading.add(ep.name, obj, PluginInfo(ep.name, dist_name, dist.version, builtin))


def _fill_registry(loading: _Loading, hook: str, registry: Registry[Any]) -> Registry[Any]:
    """Call every implementation of ``hook`` with a ``register`` that checks each object against
    the registry's contract: one that breaks it is one warning line (PluginError with strict)."""
    for impl in getattr(loading.pm.hook, hook).get_hookimpls():
        plugin = impl.plugin_name
        added: list[str] = []

        def register(item: Any, _plugin: str = plugin, _added: list[str] = added) -> None:
            problem = registry.problem(item)
            typos = [] if problem else near_misses(item, registry.kind, registry.contract.names())
            problem = problem or _half_protocol(registry.kind, item)
            if problem:
                also = f" (it has {', '.join(typos)})" if typos else ""
                loading.fail(f"plugin {_plugin!r} registered {problem}{also}; it was skipped")
                return
            for typo in typos:
                loading.fail(
                    f"plugin {_plugin!r} registered the {registry.kind} {item.name!r} with {typo}, "
                    f"which the harness never reads"
                )
            registry.add(item, _plugin)
            _added.append(item.name)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:  # plugin isolation, as above
            log.info("plugin %r failed in %s:", plugin, hook, exc_info=exc)
            loading.fail(f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}", exc)
        if added and plugin in loading.plugins:
            loading.plugins[plugin].registered[registry.kind] = added
    return registry


def _half_protocol(kind: str, item: Any) -> str | None:
    """Why ``item`` cannot be used: it has only part of an optional protocol (or None)."""
    halves = half_protocols(item, kind)
    name = getattr(item, "name", "?")
    return f"the {kind} {name!r} with {'; '.join(halves)}" if halves else None


def _hooks_of(pm: pluggy.PluginManager, name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    return [caller.name for caller in (pm.get_hookcallers(plugin) or [])]


def _check_hooks(pm: pluggy.PluginManager, name: str) -> None:
    """Reject hook implementations that match no spec (a typo'd hook name)."""
    plugin = pm.get_plugin(name)
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            raise PluginError(
                f"it implements {caller.name!r}, which is not a lingspace hook (known: {', '.join(HOOKS)})"
            )
