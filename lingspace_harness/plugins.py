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
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Registry

log = logging.getLogger("lingspace_harness")

ENTRY_POINT_GROUP = "lingspace_harness"
BUILTIN_DISTRIBUTION = "lingspace-harness"
LOAD_ENV = "LINGSPACE_LOAD_PLUGINS"
DISABLE_ENV = "LINGSPACE_DISABLE_PLUGINS"

# hook name -> registry kind (used in messages)
KINDS = {
    "lingspace_register_phenomena": "task",
    "lingspace_register_task_sources": "task source",
    "lingspace_register_model_loaders": "model loader",
    "lingspace_register_gradient_strategies": "gradient strategy",
    "lingspace_register_metrics": "metric",
    "lingspace_register_space_builders": "space builder",
    "lingspace_register_hypotheses": "hypothesis",
    "lingspace_register_executors": "executor",
    "lingspace_register_reporters": "reporter",
    "lingspace_register_commands": "command",
}

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
    registries: dict[str, Registry]
    warnings: list[str]

    @property
    def tasks(self) -> Registry:
        return self.registries["lingspace_register_phenomena"]

    @property
    def task_sources(self) -> Registry:
        return self.registries["lingspace_register_task_sources"]

    @property
    def model_loaders(self) -> Registry:
        return self.registries["lingspace_register_model_loaders"]

    @property
    def gradient_strategies(self) -> Registry:
        return self.registries["lingspace_register_gradient_strategies"]

    @property
    def metrics(self) -> Registry:
        return self.registries["lingspace_register_metrics"]

    @property
    def space_builders(self) -> Registry:
        return self.registries["lingspace_register_space_builders"]

    @property
    def hypotheses(self) -> Registry:
        return self.registries["lingspace_register_hypotheses"]

    @property
    def executors(self) -> Registry:
        return self.registries["lingspace_register_executors"]

    @property
    def reporters(self) -> Registry:
        return self.registries["lingspace_register_reporters"]

    @property
    def commands(self) -> Registry:
        return self.registries["lingspace_register_commands"]


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


def load_harness(strict: bool = False, env: dict[str, str] | None = None) -> Harness:
    """Load every allowed plugin and collect their registrations."""
    env = os.environ if env is None else env
    allow = _names(env.get(LOAD_ENV))
    deny = _names(env.get(DISABLE_ENV)) or set()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins: dict[str, PluginInfo] = {}
    warnings: list[str] = []

    def fail(message: str) -> None:
        if strict:
            raise PluginError(message)
        log.warning(message)
        warnings.append(message)

    def add(name: str, obj: Any, info: PluginInfo) -> None:
        if name in plugins:
            other = plugins[name].distribution
            fail(f"plugin {name!r} from {info.distribution} skipped: "
                 f"the name is taken by {other}")
            return
        try:
            pm.register(obj, name=name)
            _check_hooks(pm, name)
        except Exception as exc:  # pluggy validation errors and anything a plugin raises
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            fail(f"plugin {name!r} is invalid and was skipped: {exc}")
            return
        info.hooks = sorted(impl_name for impl_name in _hooks_of(pm, name))
        if not info.hooks:
            pm.unregister(name=name)
            fail(f"plugin {name!r} implements no lingspace hook (is @hookimpl missing?) "
                 f"and was skipped")
            return
        plugins[name] = info

    for ep, dist in _entry_points():
        dist_name = dist.metadata["Name"]
        builtin = _norm(dist_name) == BUILTIN_DISTRIBUTION
        keys = {_norm(ep.name), _norm(dist_name)}
        if keys & deny:
            continue
        if not builtin and allow is not None and not keys & allow:
            continue
        info = PluginInfo(ep.name, dist_name, dist.version, builtin)
        try:
            obj = ep.load()
        except Exception as exc:
            fail(f"plugin {ep.name!r} ({dist_name} {dist.version}) failed to import: "
                 f"{type(exc).__name__}: {exc}")
            continue
        add(ep.name, obj, info)

    for name, obj in list(_extra_plugins):
        if _norm(name) not in deny:
            add(name, obj, PluginInfo(name, None, None, False))

    registries = {hook: Registry(kind) for hook, kind in KINDS.items()}
    for hook, registry in registries.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            plugin = impl.plugin_name
            added: list[str] = []

            def register(item: Any, _plugin: str = plugin, _added: list = added,
                         _registry: Registry = registry) -> None:
                _registry.add(item, _plugin)
                _added.append(item.name)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                fail(f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}")
            if added and plugin in plugins:
                plugins[plugin].registered[KINDS[hook]] = added
    return Harness(pm, plugins, registries, warnings)


def _hooks_of(pm: pluggy.PluginManager, name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    return [caller.name for caller in (pm.get_hookcallers(plugin) or [])]


def _check_hooks(pm: pluggy.PluginManager, name: str) -> None:
    """Reject hook implementations that match no spec (a typo'd hook name)."""
    plugin = pm.get_plugin(name)
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            raise PluginError(f"it implements {caller.name!r}, which is not a lingspace hook "
                              f"(known: {', '.join(KINDS)})")
