"""Optional members of plugin objects, one small protocol each.

A metric, strategy or executor may have more than its kind's required members (see
``protocols``). Each optional member belongs to one protocol here; the core asks
``isinstance(obj, Protocol)`` (or the helpers below) and never guesses a capability from
any other name. At registration, ``near_misses`` finds public names one typo away from a
member the core reads (``run_units`` for ``run_unit``), and ``half_protocols`` an object
with part of a protocol (``units`` without ``run_unit``).
"""

from __future__ import annotations

import argparse
import difflib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .config import RunConfig
from .gradients import ParamLayout
from .protocols import RunContext, RunPlan, Unit

if TYPE_CHECKING:
    import torch

#: How close a public name must be to a member the harness reads to be reported as a typo.
NEAR_MISS_CUTOFF = 0.75


class ArgumentGroup(Protocol):
    """What ``add_arguments(group)`` gets: an argparse argument group of the plugin's own, whose
    ``add_argument`` takes argparse's arguments (``dest`` names a field of the plugin's ``Options``)."""

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action: ...


@runtime_checkable
class AlwaysComputed(Protocol):
    """A metric computed in every run (``always = True``), asked for or not."""

    always: bool


@runtime_checkable
class Configurable(Protocol):
    """Adds its own options to ``run`` (an argparse group); they reach it through ``Options``."""

    def add_arguments(self, group: ArgumentGroup) -> None: ...


@runtime_checkable
class HasOptions(Protocol):
    """Its options are a dataclass, ``Options``, filled from the command line (a field named
    ``seed`` defaults to the run's seed). It validates itself: its ``__post_init__`` raises
    :class:`lingspace_harness.UserError` for values no run can use. The options given to any
    plugin are built, and so validated, before any data or model loads."""

    Options: type


@runtime_checkable
class ReadsGradients(Protocol):
    """A metric that reads gradient differentials: the strategies whose reductions it reads.
    Called before any data or model loads (the run's ``RunPlan``): an unknown strategy, or one
    the metric cannot use (raise UserError), fails the run before any work."""

    def strategies(self, ctx: RunPlan) -> list[str]: ...


@runtime_checkable
class NeedsCapabilities(Protocol):
    """Names capabilities another metric or strategy provides (``RunContext.provider``)."""

    needs: tuple[str, ...]


@runtime_checkable
class ProvidesCapabilities(Protocol):
    """Names capabilities it provides to metrics that need them."""

    provides: tuple[str, ...]


@runtime_checkable
class HasUnits(Protocol):
    """A metric with its own units of work: ``units(ctx)`` lists the pending ones,
    ``run_unit(ctx, unit)`` computes one (in any process) and stores it."""

    def units(self, ctx: RunContext) -> list[Unit]: ...

    def run_unit(self, ctx: RunContext, unit: Unit) -> None: ...


@runtime_checkable
class ChecksOptions(Protocol):
    """A metric's check of its options against the run (``scores_only``: the model cannot give
    gradients or token counts); runs before any data or model loads."""

    def check(self, options: Any, scores_only: bool) -> None: ...


@runtime_checkable
class Summarises(Protocol):
    """A metric's line for the end of ``run`` (None: nothing to say)."""

    def summary(self, results: dict[str, Any]) -> str | None: ...


@runtime_checkable
class ChecksConfig(Protocol):
    """An executor's check of the run's config before any work (e.g. a missing dependency)."""

    def check(self, config: RunConfig) -> None: ...


@runtime_checkable
class HasLayerSlices(Protocol):
    """A vector strategy's slices of its reduction per layer (for per-layer spaces)."""

    def layer_slices(self, layout: ParamLayout, options: Any) -> dict[str, list[tuple[int, int]]]: ...


@runtime_checkable
class ReducesOnDevice(Protocol):
    """A strategy's ``reduce`` done on the model's device: ``grad`` is a float32 torch tensor
    there, and only the result (a numpy array, as ``reduce`` returns) crosses to the host. The
    core uses it when the model is not on the CPU; it must equal ``reduce`` (up to float sums)."""

    def reduce_tensor(self, grad: torch.Tensor, layout: ParamLayout, options: Any) -> np.ndarray: ...


@runtime_checkable
class ScoresOnly(Protocol):
    """A model loader whose models only score (no gradients, no token counts)."""

    scores_only: bool


@runtime_checkable
class TakesPluginOptions(Protocol):
    """A command that takes the ``run`` options of the plugins of some kinds (ids in
    ``lingspace_harness.kinds.KINDS``, e.g. ``("space_builder",)``): the CLI adds their option
    groups to its parser, and ``lingspace_harness.options.parsed_options(args)`` reads them."""

    plugin_options: tuple[str, ...]


#: The optional protocols of each registry kind (see ``plugins.HOOKS``).
OPTIONAL: dict[str, tuple[type, ...]] = {
    "metric": (
        AlwaysComputed,
        Configurable,
        HasOptions,
        ReadsGradients,
        NeedsCapabilities,
        ProvidesCapabilities,
        HasUnits,
        ChecksOptions,
        Summarises,
    ),
    "gradient strategy": (Configurable, HasOptions, ProvidesCapabilities, HasLayerSlices, ReducesOnDevice),
    "executor": (Configurable, ChecksConfig),
    "model loader": (ScoresOnly,),
    "space builder": (Configurable, HasOptions),
    "reporter": (Configurable, HasOptions),
    "command": (TakesPluginOptions,),
}


def members(protocol: type) -> tuple[str, ...]:
    """A protocol's member names: its annotations and its public methods."""
    own = vars(protocol)
    return tuple(own.get("__annotations__", {})) + tuple(
        k for k, v in own.items() if callable(v) and not k.startswith("_")
    )


def has(item: Any, protocol: type) -> bool:
    """Whether ``item`` has every member of ``protocol`` (``isinstance`` for a runtime protocol)."""
    return isinstance(item, protocol)


def needs(item: Any) -> tuple[str, ...]:
    """The capabilities ``item`` needs (none if it names none)."""
    return tuple(item.needs) if isinstance(item, NeedsCapabilities) else ()


def provides(item: Any) -> tuple[str, ...]:
    """The capabilities ``item`` provides (none if it names none)."""
    return tuple(item.provides) if isinstance(item, ProvidesCapabilities) else ()


def is_always(metric: Any) -> bool:
    """Whether a metric is computed in every run."""
    return isinstance(metric, AlwaysComputed) and bool(metric.always)


def reads_gradients(metric: Any) -> bool:
    """Whether a metric reads gradient differentials (``strategies``)."""
    return isinstance(metric, ReadsGradients)


def strategies(metric: Any, ctx: RunPlan) -> list[str]:
    """The gradient strategies a metric reads in this run (none for one that reads none)."""
    return list(metric.strategies(ctx)) if isinstance(metric, ReadsGradients) else []


def units(metric: Any, ctx: RunContext) -> list[Unit]:
    """A metric's pending units of work (none for one without units)."""
    return list(metric.units(ctx)) if isinstance(metric, HasUnits) else []


def half_protocols(item: Any, kind: str) -> list[str]:
    """Phrases for each optional protocol of ``kind`` that ``item`` has only part of, e.g.
    ``"units() without run_unit()"``."""
    out = []
    for protocol in OPTIONAL.get(kind, ()):
        names = members(protocol)
        present = [n for n in names if hasattr(item, n)]
        if present and len(present) < len(names):
            missing = [n for n in names if n not in present]
            out.append(
                f"{' and '.join(_shown(item, n) for n in present)} without "
                f"{' and '.join(_shown(item, n, protocol) for n in missing)}"
            )
    return out


def near_misses(item: Any, kind: str, required: tuple[str, ...]) -> list[str]:
    """Phrases for each public name of ``item`` that the harness never reads but that is one
    typo away from a member it does read, e.g. ``"'run_units' (did you mean 'run_unit'?)"``."""
    if kind not in OPTIONAL:
        return []
    known = set(required) | {n for p in OPTIONAL[kind] for n in members(p)}
    out = []
    for name in _public_names(item):
        if name in known:
            continue
        close = [
            c
            for c in difflib.get_close_matches(name, sorted(known), n=3, cutoff=NEAR_MISS_CUTOFF)
            if not hasattr(item, c)
        ]
        if close:
            out.append(f"{name!r} (did you mean {' or '.join(repr(c) for c in close)}?)")
    return out


def _public_names(item: Any) -> list[str]:
    return sorted(n for n in dir(item) if not n.startswith("_"))


def _shown(item: Any, name: str, protocol: type | None = None) -> str:
    """``name()`` for a method, ``name`` for an attribute."""
    value = getattr(protocol, name, None) if protocol is not None else getattr(item, name, None)
    return f"{name}()" if callable(value) and not isinstance(value, type) else name
