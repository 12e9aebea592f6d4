"""Plugins' own options: each plugin's ``add_arguments(group)`` fills an argument group named
after it, and the parsed values come back per kind and plugin (``RunConfig.options[kind][name]``,
the kinds of ``kinds.OPTIONED``).

A plugin adds options as with argparse; the destination of each option (its ``dest``, or
the option string without dashes) is a field of the plugin's ``Options`` dataclass. Values
are kept apart per kind and plugin, so two plugins (even a metric and a reporter of the same
name) may use the same field names.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, fields, is_dataclass
from typing import Any, cast

from .capabilities import Configurable, HasOptions
from .config import RECORDED_WHEN_SET
from .errors import PluginError, UserError
from .kinds import OPTIONED, kind_of
from .registry import Registry

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["parsed_options", "plugin_options", "recorded"]

#: Namespace attributes of plugin options are ``PREFIX + kind + ":" + plugin + "." + field``.
PREFIX = "plugin:"
#: Options by kind id, then plugin name, then field: what run.json records under ``config.options``.
Options = dict[str, dict[str, dict[str, Any]]]
#: argparse actions that take a value, and so show a metavar.
_VALUED = (None, "store", "append", "extend")


class PluginGroup:
    """An argparse group that files each option under its kind and plugin (see the module docstring)."""

    def __init__(self, group: Any, kind: str, plugin: str) -> None:
        self._group, self.kind, self.plugin = group, kind, plugin
        self.fields: list[str] = []

    def add_argument(self, *flags: str, **kwargs: Any) -> Any:
        name = kwargs.pop("dest", None) or next(f for f in flags if f.startswith("--"))[2:].replace("-", "_")
        self.fields.append(name)
        if kwargs.get("action") in _VALUED and "choices" not in kwargs:
            kwargs.setdefault("metavar", name.upper())  # not argparse's PLUGIN:KIND:NAME.FIELD
        return self._group.add_argument(*flags, dest=f"{PREFIX}{self.kind}:{self.plugin}.{name}", **kwargs)


def add_plugin_arguments(
    parser: argparse.ArgumentParser, registries: Mapping[str, Registry[Any]], kinds: Iterable[str] = OPTIONED
) -> dict[tuple[str, str], list[str]]:
    """One argument group per plugin object of ``kinds`` that adds options (``registries``: kind
    id -> registry); returns (kind, plugin name) -> its option fields."""
    added: dict[tuple[str, str], list[str]] = {}
    for kind in kinds:
        registry = registries[kind]
        for plugin in registry:
            if not isinstance(plugin, Configurable):
                continue
            plugin = cast(Any, plugin)  # a registered object: it has a name and a description
            owner = registry.owner(plugin.name)
            title = f"{plugin.name} ({kind_of(kind).label}, plugin {owner})"
            group = PluginGroup(parser.add_argument_group(title, plugin.description), kind, plugin.name)
            try:
                plugin.add_arguments(group)
            except argparse.ArgumentError as exc:
                raise PluginError(f"plugin {owner!r}: {plugin.name}'s option clashes with another: {exc}") from exc
            added.setdefault((kind, plugin.name), []).extend(group.fields)
    return added


def parsed_options(args: argparse.Namespace) -> Options:
    """Kind -> plugin name -> {field: value} from parsed arguments (values left at None are dropped)."""
    out: Options = {}
    for key, value in vars(args).items():
        if key.startswith(PREFIX) and value is not None:
            kind, _, rest = key[len(PREFIX) :].partition(":")
            plugin, _, name = rest.partition(".")
            out.setdefault(kind, {}).setdefault(plugin, {})[name] = value
    return out


def by_kind(options: Mapping[str, Any], kind_of_name: Callable[[str], str | None]) -> Options:
    """``options`` by kind: as they are if already so (``Options``), else a record written before
    options were kept by kind (plugin name -> fields), each name filed under the kind
    ``kind_of_name`` gives it (names it gives none are dropped: no loaded plugin has them)."""
    nested = all(k in OPTIONED and isinstance(v, dict) for k, v in options.items()) and all(
        isinstance(f, dict) for v in options.values() for f in v.values()
    )
    if nested:
        return {k: {n: dict(f) for n, f in v.items()} for k, v in options.items()}
    out: Options = {}
    for name, values in options.items():
        kind = kind_of_name(name)
        if kind is not None:
            out.setdefault(kind, {})[name] = dict(values)
    return out


def recorded(options: Mapping[str, Any], kind: str, name: str) -> dict[str, Any]:
    """A plugin's options as results.json or run.json records them (``config.options``, by kind;
    a record from before options were kept by kind: by name), or {} where none are recorded."""
    nested = options.get(kind)
    if kind in OPTIONED and isinstance(nested, dict) and isinstance(nested.get(name), dict):
        return dict(nested[name])
    flat = options.get(name)
    return dict(flat) if isinstance(flat, dict) and name not in OPTIONED else {}


def plugin_options(plugin: Any, values: dict[str, Any], seed: int) -> Any:
    """A plugin's options: its ``Options`` dataclass filled from ``values`` (a field named
    ``seed`` defaults to the run's seed), or a plain dict for a plugin without one."""
    kind = plugin.Options if isinstance(plugin, HasOptions) else None
    if kind is None or not is_dataclass(kind):
        return dict(values)
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"{plugin.name}: unknown option(s) {', '.join(unknown)}; it has {', '.join(sorted(names))}")
    return kind(**{**({"seed": seed} if "seed" in names else {}), **values})


def options_record(value: Any) -> dict[str, Any]:
    """A plugin's options as a plain dict (its ``Options`` dataclass's fields, or the dict itself);
    a field marked ``RECORDED_WHEN_SET`` is left out while it holds its default."""
    if not is_dataclass(value) or isinstance(value, type):
        return dict(value)  # type: ignore[arg-type]
    record = asdict(value)
    for f in fields(value):
        if f.metadata.get("recorded") == RECORDED_WHEN_SET["recorded"] and record[f.name] == f.default:
            del record[f.name]
    return record
