"""From a run's config to its :class:`plan.Plan`, once, before any data or model loads: every
name resolved to its plugin, every option validated, every check that needs no data or model."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .analysis import hypothesis_from_file
from .batch_size import AUTO
from .capabilities import (
    ChecksConfig,
    ChecksOptions,
    Configurable,
    HasOptions,
    ScoresOnly,
    is_always,
    needs,
    provides,
    reads_gradients,
    strategies,
)
from .config import IN_PROCESS, RunConfig
from .errors import UserError
from .kinds import OPTIONED
from .models import resolve_loader
from .options import Options, by_kind, plugin_options
from .plan import Plan
from .plugins import Harness
from .protocols import Metric

__all__ = ["check_scoring_only", "learns", "resolve_plan"]


def resolve_plan(harness: Harness, config: RunConfig) -> Plan:
    """The run ``config`` asks for, resolved and checked (a UserError for anything no run can use)."""
    check_values(config)
    metrics = resolve_metrics(harness, config.metrics)
    providers, helpers = resolve_providers(harness, metrics)
    loader, spec = resolve_loader(harness.model_loaders, config.model)
    given = by_kind(config.options, harness.optioned_kind)  # an older record's, read by kind
    plan = Plan(
        harness,
        config,
        providers,
        tuple(metrics),
        tuple(helpers),
        given=given,
        all_options=resolve_options(harness, config, given),
        loader=loader,
        model_spec=spec,
        scores_only=isinstance(loader, ScoresOnly) and bool(loader.scores_only),
        learners=tuple(m.name for m in metrics + helpers if learns(m, providers, harness.gradient_strategies)),
        executor=None if config.executor == IN_PROCESS else harness.executors.get(config.executor),
        builders=tuple(resolve_builders(harness, config.analysis)),
        reporters=tuple(harness.reporters.get(n) for n in config.reporters),
    )
    if plan.scores_only:
        check_scoring_only(plan)
    for metric in plan.run_metrics:  # a metric's own checks of its options against this run
        if isinstance(metric, ChecksOptions):
            metric.check(plan.options(metric.name, "metric"), plan.scores_only)
    used = dict.fromkeys(s for m in plan.run_metrics for s in strategies(m, plan))
    for strategy in used:  # the gradient strategies the metrics read exist
        harness.gradient_strategies.get(strategy)
    for path in config.hypotheses:  # a bad file fails now, not after hours of work
        hypothesis_from_file(path)
    if isinstance(plan.executor, ChecksConfig):
        plan.executor.check(config)
    return dataclasses.replace(plan, strategies=tuple(used))


def check_values(config: RunConfig) -> None:
    """The run-level settings no run can use."""
    if config.limit is not None and config.limit < 1:
        raise UserError("--limit must be at least 1")
    if config.batch_size != AUTO and (not isinstance(config.batch_size, int) or config.batch_size < 1):
        raise UserError(f"--batch-size must be a whole number of at least 1 or 'auto', not {config.batch_size!r}")
    if config.device_map and config.device != RunConfig.device:
        raise UserError(f"give --device ({config.device}) or --device-map ({config.device_map}), not both")


def resolve_metrics(harness: Harness, names: list[str]) -> list[Metric]:
    """The metrics every run computes (``always = True``), then those asked for, in order."""
    always = [m.name for m in harness.metrics if is_always(m)]
    return [harness.metrics.get(n) for n in dict.fromkeys(always + list(names))]


def resolve_providers(harness: Harness, metrics: list[Metric]) -> tuple[dict[str, Any], list[Metric]]:
    """Capability -> the metric or gradient strategy that provides it, for every metric's
    ``needs`` (transitively); and the metrics that join the run only as providers."""
    providers: dict[str, Any] = {}
    helpers: list[Metric] = []
    todo = [(m, need) for m in metrics for need in needs(m)]
    while todo:
        metric, need = todo.pop(0)
        if need in providers:
            continue
        candidates = [
            x for registry in (harness.metrics, harness.gradient_strategies) for x in registry if need in provides(x)
        ]
        if not candidates:
            raise UserError(
                f"metric {metric.name!r} needs {need!r}, which no loaded plugin provides "
                f"(see `lingspace-harness plugins`; is one disabled by LINGSPACE_DISABLE_PLUGINS?)"
            )
        chosen = next((c for c in candidates if c in metrics), candidates[0])
        providers[need] = chosen
        is_metric = chosen.name in harness.metrics and harness.metrics.get(chosen.name) is chosen
        if is_metric and chosen not in metrics and chosen not in helpers:
            helper = harness.metrics.get(chosen.name)
            helpers.append(helper)
            todo += [(helper, n) for n in needs(helper)]
    return providers, helpers


def resolve_options(harness: Harness, config: RunConfig, given: Options) -> dict[tuple[str, str], Any]:
    """Every optioned plugin's options by (kind, name), from the ``given`` values (the config's,
    by kind; an executor's from ``executor_options``), each validated by its ``Options`` (see
    ``HasOptions``)."""
    out: dict[tuple[str, str], Any] = {}
    for kind in OPTIONED:
        for plugin in harness.registry(kind):
            if kind == "executor":
                values = config.executor_options if plugin.name == config.executor else None
            else:
                values = given.get(kind, {}).get(plugin.name)
            if values or isinstance(plugin, (Configurable, HasOptions)):
                out[(kind, plugin.name)] = plugin_options(plugin, dict(values or {}), config.seed)
    return out


def resolve_builders(harness: Harness, names: list[str] | None) -> list[Any]:
    """The space builders the analysis runs: all (None), none ([]) or those named."""
    registry = harness.space_builders
    return list(registry) if names is None else [registry.get(n) for n in names]


def learns(metric: Any, providers: dict[str, Any], gradient_strategies: Iterable[Any]) -> bool:
    """Whether a metric needs gradients: it reads differentials (``strategies``), or needs what a
    registered gradient strategy, or a metric that reads differentials, provides."""
    found = [providers[n] for n in needs(metric) if n in providers]
    return reads_gradients(metric) or any(reads_gradients(p) or any(p is s for s in gradient_strategies) for p in found)


def check_scoring_only(plan: Plan) -> None:
    """A model that only scores supports neither gradients (see ``learns``) nor our prefix."""
    model = plan.config.model
    if plan.learners:
        raise UserError(f"metric {plan.learners[0]} needs a torch model; --model {model} only scores")
    if plan.config.prefix_token:
        raise UserError(
            f"--prefix-token does not apply to --model {model}, which scores with "
            f"its own prefix (set it in the model's arguments, e.g. prefix_token_id=ID)"
        )
