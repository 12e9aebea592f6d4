"""Plugins' own ``run`` options: each plugin's ``add_arguments(group)`` fills an argument group
named after it, and the parsed values come back per plugin (``RunConfig.options[name]``).

A plugin adds options as with argparse; the destination of each option (its ``dest``, or
the option string without dashes) is a field of the plugin's ``Options`` dataclass. Values
are kept apart per plugin, so two plugins may use the same field names.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import asdict, fields, is_dataclass
from typing import Any

from .capabilities import Configurable, HasOptions
from .config import RECORDED_WHEN_SET
from .errors import PluginError, UserError

#: Namespace attributes of plugin options are ``PREFIX + plugin + "." + field``.
PREFIX = "plugin:"


class PluginGroup:
    """An argparse group that files each option under its plugin (see the module docstring)."""

    def __init__(self, group: Any, plugin: str) -> None:
        self._group, self.plugin = group, plugin
        self.fields: list[str] = []

    def add_argument(self, *flags: str, **kwargs: Any) -> Any:
        name = kwargs.pop("dest", None) or next(f for f in flags if f.startswith("--"))[2:].replace("-", "_")
        self.fields.append(name)
        return self._group.add_argument(*flags, dest=f"{PREFIX}{self.plugin}.{name}", **kwargs)


def optioned(registries: Iterable[Any]) -> list[Any]:
    """Registered objects that add ``run`` options, in registry order."""
    return [item for registry in registries for item in registry if isinstance(item, Configurable)]


def add_plugin_arguments(
    parser: argparse.ArgumentParser, plugins: Iterable[Any], owners: dict[str, str]
) -> dict[str, list[str]]:
    """One argument group per plugin object; returns plugin name -> its option fields."""
    added: dict[str, list[str]] = {}
    for plugin in plugins:
        group = PluginGroup(
            parser.add_argument_group(f"{plugin.name} ({owners.get(plugin.name, 'plugin')})", plugin.description),
            plugin.name,
        )
        try:
            plugin.add_arguments(group)
        except argparse.ArgumentError as exc:
            raise PluginError(
                f"plugin {owners.get(plugin.name, plugin.name)!r}: {plugin.name}'s option clashes with another: {exc}"
            ) from exc
        added.setdefault(plugin.name, []).extend(group.fields)
    return added


def parsed_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Plugin name -> {field: value} from parsed arguments (values left at None are dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if key.startswith(PREFIX) and value is not None:
            plugin, _, name = key[len(PREFIX) :].partition(".")
            out.setdefault(plugin, {})[name] = value
    return out


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
