"""What units of work took, and what each space cost.

When a unit runs (``Worker.run``, whichever executor or shard runs it) its wall seconds are
stored like any unit, under ``DIR/units/seconds-<kind>/``, keyed like the unit (model, data,
settings, data variant) and by its owner, so a resumed, sharded or Ray run still knows what
every unit took. ``space_cost`` adds up the seconds of the units a metric's space rests on:
the core's gradient units where the metric (or a metric it needs) reads differentials, its own
units and those of the metrics that provide what it needs (e.g. tuned models), plus the
seconds of its ``compute`` in the run that assembled results.json. A unit that several spaces
rest on (a task's gradient unit computes every strategy at once) counts in full for each of
them; ``mark_shared`` names the others beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .capabilities import HasUnits, needs, strategies
from .context import Run
from .gradient_cache import VARIANTS
from .protocols import Unit
from .units import UNITS_DIR, UnitStore

#: The kind of the core's own units: one task's gradient differential, every strategy's reduction.
GRADIENT = "gradient"
#: Seconds of units of kind K are stored as units of kind ``seconds-K``.
PREFIX = "seconds-"


def _store(ctx: Run, kind: str, owner: str) -> UnitStore:
    return ctx.units(PREFIX + kind, owner=owner)


def record_seconds(ctx: Run, unit: Unit, seconds: float) -> None:
    """Store the wall seconds ``unit`` took (``ctx`` is the run of the unit's data variant)."""
    _store(ctx, unit.kind, unit.owner).save_json(unit.name, {"stage": unit.stage, "seconds": seconds})


def recorded(ctx: Run, owner: str) -> dict[str, dict[str, float]]:
    """Kind -> {unit name: seconds} of ``owner``'s units ("" for the core's) stored for this run
    (and ``ctx``'s data variant): only entries whose full key matches are read."""
    out: dict[str, dict[str, float]] = {}
    for folder in sorted((Path(ctx.config.output) / UNITS_DIR).glob(PREFIX + "*")):
        store = _store(ctx, folder.name[len(PREFIX) :], owner)
        suffix = f"-{store.key}.json"
        names = sorted(p.name[: -len(suffix)] for p in folder.glob("*" + suffix))
        seconds = {n: float(store.load_json(n)["seconds"]) for n in names if store.has(n, ".json")}
        if seconds:
            out[folder.name[len(PREFIX) :]] = seconds
    return out


def _is_metric(ctx: Run, obj: Any) -> bool:
    metrics = ctx.harness.metrics
    return obj is not None and obj.name in metrics and metrics.get(obj.name) is obj


def rests_on(ctx: Run, metric: Any) -> tuple[bool, list[Any]]:
    """Whether ``metric``'s space rests on the gradient units, and the metrics whose units it rests
    on: itself, then the metrics providing what it needs (transitively)."""
    owners: list[Any] = []
    todo = [metric]
    while todo:
        m = todo.pop(0)
        if m in owners:
            continue
        owners.append(m)
        providers = [ctx.shared.providers.get(need) for need in needs(m)]
        todo += [p for p in providers if _is_metric(ctx, p)]
    gradients = any(strategies(m, ctx) for m in owners)
    return gradients, owners


def _groups(ctx: Run, metric: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The unit groups (variant, kind, owner) a space rests on in ``ctx``'s variant, with their
    count and seconds, and what has no recorded seconds."""
    gradients, owners = rests_on(ctx, metric)
    groups, missing = [], []
    if gradients and not ctx.variant:  # the run's own gradient unit also computes its halves'
        times = recorded(ctx, "").get(GRADIENT, {})
        left = [t for t in ctx.task_names if t not in times]
        if left:
            missing.append(f"the gradient units of {len(left)} of {len(ctx.task_names)} tasks")
        groups.append(
            {"variant": ctx.variant, "kind": GRADIENT, "owner": "", "count": len(times), "seconds": sum(times.values())}
        )
    for owner in owners:
        name = owner.name
        found = recorded(ctx, name)
        if not found and isinstance(owner, HasUnits):
            missing.append(f"the units of {name}" + (f" ({ctx.variant})" if ctx.variant else ""))
        groups += [
            {
                "variant": ctx.variant,
                "kind": kind,
                "owner": owner.name,
                "count": len(times),
                "seconds": sum(times.values()),
            }
            for kind, times in found.items()
        ]
    return groups, missing


def space_cost(ctx: Run, metric: Any, compute_s: float, halves_s: float | None = None) -> dict[str, Any]:
    """What ``metric``'s space cost: ``cost_s`` (None, with a ``reason``, where some unit has no
    recorded seconds), the unit groups it rests on, the seconds of ``compute`` in this process,
    and with ``--split-half`` the halves' own units and computes (``split_half_s``), which
    ``cost_s`` leaves out."""
    groups, missing = _groups(ctx, metric)
    cost: dict[str, Any] = {
        "cost_s": None if missing else compute_s + sum(g["seconds"] for g in groups),
        "compute_s": compute_s,
        "units": groups,
    }
    if missing:
        cost["reason"] = (
            f"no seconds recorded for {'; '.join(missing)} (computed by a version that did not "
            "record them, or outside the executor)"
        )
    if halves_s is not None:
        half_groups, half_missing = [], []
        for variant in VARIANTS:
            g, m = _groups(ctx.for_variant(variant), metric)
            half_groups += g
            half_missing += m
        cost["units"] += half_groups
        cost["split_half_s"] = None if half_missing else halves_s + sum(g["seconds"] for g in half_groups)
    return cost


def mark_shared(costs: dict[str, dict[str, Any]]) -> None:
    """Beside each unit group of each space's cost, the other spaces that count the same units."""

    def key(group: dict[str, Any]) -> tuple[str, str, str]:
        return group["variant"], group["kind"], group["owner"]

    users: dict[tuple[str, str, str], list[str]] = {}
    for name, cost in costs.items():
        for group in cost["units"]:
            users.setdefault(key(group), []).append(name)
    for name, cost in costs.items():
        for group in cost["units"]:
            group["shared_with"] = [other for other in users[key(group)] if other != name]
