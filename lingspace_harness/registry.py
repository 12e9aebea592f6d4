"""Name -> object tables filled by plugins' ``register`` callbacks."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import PluginError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Contract:
    """What a registered object must have: ``attributes``, and ``methods`` that are callable."""

    attributes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: type) -> Contract:
        """Read the contract off a protocol (its annotations and methods) or a dataclass (its
        fields without defaults; those typed ``Callable`` are methods)."""
        if dataclasses.is_dataclass(spec):
            required = [
                f
                for f in dataclasses.fields(spec)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            callables = {f.name for f in required if str(f.type).startswith("Callable")}
            return cls(
                tuple(f.name for f in required if f.name not in callables),
                tuple(f.name for f in required if f.name in callables),
            )
        return cls(
            tuple(vars(spec).get("__annotations__", {})),
            tuple(k for k, v in vars(spec).items() if callable(v) and not k.startswith("_")),
        )

    def missing(self, item: Any) -> list[str]:
        """What ``item`` lacks: attribute names, and ``name()`` for methods absent or not callable."""
        return [a for a in self.attributes if not hasattr(item, a)] + [
            f"{m}()" for m in self.methods if not callable(getattr(item, m, None))
        ]

    def names(self) -> tuple[str, ...]:
        """Every member name the contract requires."""
        return self.attributes + self.methods

    def __str__(self) -> str:
        return ", ".join([*self.attributes, *(f"{m}()" for m in self.methods)])


class Registry(Generic[T]):
    """Registered objects of one kind, keyed by their ``name`` attribute. With a ``contract``,
    :meth:`problem` says what an object lacks before it is added."""

    def __init__(self, kind: str, contract: Contract | None = None) -> None:
        self.kind = kind
        self.contract = contract or Contract()
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def problem(self, item: Any) -> str | None:
        """Why ``item`` breaks this kind's contract (one phrase), or None if it keeps it."""
        missing = self.contract.missing(item)
        if not missing:
            return None
        name = getattr(item, "name", None)
        what = f"the {self.kind} {name!r}" if isinstance(name, str) and name else f"a {self.kind} ({item!r})"
        return f"{what} without {', '.join(missing)} (a {self.kind} needs {self.contract})"

    def add(self, item: T, plugin: str) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} without a name: {item!r}")
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin {self._owners[name]!r} and by plugin {plugin!r}"
            )
        self._items[name] = item
        self._owners[name] = plugin

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError as exc:
            raise UnknownNameError(f"unknown {self.kind} {name!r}{self.suggest(name)}") from exc

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
                raise UnknownNameError(f"no {self.kind} matches {pattern!r}{self.suggest(pattern)}")
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
