"""Name -> object tables filled by plugins' ``register`` callbacks."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterator, TypeVar

from .errors import PluginError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered objects of one kind, keyed by their ``name`` attribute."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, item: T, plugin: str) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} without a name: {item!r}")
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin {self._owners[name]!r} "
                f"and by plugin {plugin!r}"
            )
        self._items[name] = item
        self._owners[name] = plugin

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}{self.suggest(name)}") from None

    def suggest(self, name: str) -> str:
        """A '; did you mean ...?' tail for an unknown name, or a list of what exists."""
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.6)
        if close:
            return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        if not self._items:
            return f"; no {self.kind}s are registered"
        shown = sorted(self._items)[:8]
        more = f", ... ({len(self._items)} in all)" if len(self._items) > 8 else ""
        return "; known: " + ", ".join(shown) + more

    def select(self, patterns: list[str]) -> list[T]:
        """Items matching any fnmatch glob, in pattern order, then name order.

        A pattern that matches nothing is an error.
        """
        chosen: dict[str, T] = {}
        for pattern in patterns:
            hits = sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))
            if not hits:
                raise UnknownNameError(
                    f"no {self.kind} matches {pattern!r}{self.suggest(pattern)}"
                )
            for n in hits:
                chosen.setdefault(n, self._items[n])
        return list(chosen.values())

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
