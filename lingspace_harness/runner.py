"""One ``run``: select tasks, load their data and the model, run the units, write results."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from .access import ModelAccess
from .analysis import AnalysisOptions, analyse, hypothesis_from_file
from .batch_size import AUTO, DEFAULT, auto_batch_size
from .capabilities import (
    ChecksConfig,
    ChecksOptions,
    HasOptions,
    ScoresOnly,
    is_always,
    needs,
    provides,
    reads_gradients,
    strategies,
)
from .config import IN_PROCESS, RunConfig
from .context import Run, Shared
from .costs import mark_shared, space_cost
from .errors import UserError
from .execution import execute_units, recorded_batch_size, write_run_file
from .fingerprints import data_fingerprints, digest, model_fingerprint
from .gradient_cache import VARIANTS
from .lexicon import token_types
from .models import LoadedModel, resolve_loader
from .options import options_record
from .outputs import claim_output, recorded_options, refuse_other_run
from .plan import Plan, find_plugin
from .plugins import Harness
from .progress import progress_bar
from .protocols import Metric, Space
from .results import new_results, write_pairs, write_results
from .scoring import prefix_token_id
from .tasks import DataOptions, TaskData, load_task_data, select_tasks, task_delimiter, task_source

log = logging.getLogger("lingspace_harness")
WORD = re.compile(r"[\w']+")


def vocabulary(pairs: list) -> list[str]:
    """The distinct lower-cased word types of the pairs (the lexical-overlap control)."""
    return sorted({w for p in pairs for text in (p.good, p.bad) for w in WORD.findall(text.lower())})


def resolve_metrics(harness: Harness, names: list[str]) -> list[Any]:
    """The metrics every run computes (``always = True``), then those asked for, in order."""
    always = [m.name for m in harness.metrics if is_always(m)]
    return [harness.metrics.get(n) for n in dict.fromkeys(always + list(names))]


def resolve_providers(harness: Harness, metrics: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """Capability -> the metric or gradient strategy that provides it, for every metric's
    ``needs`` (transitively); and the metrics that join the run only as providers."""
    providers: dict[str, Any] = {}
    helpers: list[Any] = []
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
            helpers.append(chosen)
            todo += [(chosen, n) for n in needs(chosen)]
    return providers, helpers


def load_data(harness: Harness, config: RunConfig) -> dict[str, TaskData]:
    options = DataOptions(data_dir=config.data_dir, include_paths=tuple(config.include_paths))
    tasks = select_tasks(harness.tasks, harness.task_sources, config.tasks, options)
    data = {}
    with progress_bar(len(tasks), "loading tasks", unit="task") as bar:
        for task in tasks:
            data[task.name] = load_task_data(
                task, options, seed=config.seed, limit=config.limit, fractions=config.split_fractions
            )
            bar.update(1)
    return data


def load_model(harness: Harness, config: RunConfig) -> LoadedModel:
    loader, spec = resolve_loader(harness.model_loaders, config.model)
    return loader.load(spec, config.model_options())


def check_config(harness: Harness, config: RunConfig, metrics: list[Any], providers: dict[str, Any]) -> None:
    """What can be checked before any data or model loads."""
    if config.limit is not None and config.limit < 1:
        raise UserError("--limit must be at least 1")
    if config.batch_size != AUTO and (not isinstance(config.batch_size, int) or config.batch_size < 1):
        raise UserError(f"--batch-size must be a whole number of at least 1 or 'auto', not {config.batch_size!r}")
    if config.device_map and config.device != RunConfig.device:
        raise UserError(f"give --device ({config.device}) or --device-map ({config.device_map}), not both")
    loader = resolve_loader(harness.model_loaders, config.model)[0]
    scores_only = isinstance(loader, ScoresOnly) and bool(loader.scores_only)
    if scores_only:
        check_scoring_only(config, metrics, providers, harness.gradient_strategies)
    plan = Plan(harness, config, providers)
    for name in config.options:  # every option given, of every plugin: Options validate themselves
        if find_plugin(harness, name) is not None:  # (see ``HasOptions``)
            plan.options(name)
    for metric in metrics:  # a metric's own checks of its options against this run
        name = metric.name
        if isinstance(metric, ChecksOptions):
            metric.check(plan.options(name), scores_only)
        for strategy in strategies(metric, plan):  # the gradient strategies it reads exist
            harness.gradient_strategies.get(strategy)
    for builder in config.analysis or []:
        harness.space_builders.get(builder)
    for path in config.hypotheses:  # a bad file fails now, not after hours of work
        hypothesis_from_file(path)


def check_training_pairs(
    harness: Harness, config: RunConfig, metrics: list[Any], providers: dict[str, Any], data: dict[str, TaskData]
) -> None:
    """Before the model loads: every metric that learns (see ``learns``) gets training pairs in
    every task, two or more with ``--split-half`` (which halves them)."""
    learners = [m.name for m in metrics if learns(m, providers, harness.gradient_strategies)]
    need = 2 if config.split_half else 1
    short = [name for name, d in data.items() if len(d.train) < need]
    if not (learners and short):
        return
    few = "too few to halve" if data[short[0]].train else "none"
    least = f"; --split-half needs --limit {need} or more" if config.limit is not None and config.limit < need else ""
    raise UserError(
        f"metric {learners[0]!r} learns from training pairs, but task {short[0]!r} has {few} "
        f"(--split-fractions {','.join(map(str, config.split_fractions))}, --limit {config.limit}){least}"
    )


def prepare(
    harness: Harness, config: RunConfig, check_output: Callable[[dict[str, Any]], None] = lambda fingerprints: None
) -> Run:
    """Check the config, load every task's data and the model: what a run and its workers share.
    ``check_output(fingerprints)`` runs before the data loads and again before the model loads,
    with the fingerprints known by then (see ``refuse_other_run``)."""
    metrics = resolve_metrics(harness, config.metrics)
    providers, helpers = resolve_providers(harness, metrics)
    check_config(harness, config, metrics + helpers, providers)
    check_output({})
    data = load_data(harness, config)
    check_training_pairs(harness, config, metrics + helpers, providers, data)
    tasks = data_fingerprints(data)
    fingerprints = {"data": digest(tasks), "tasks": tasks}
    check_output(fingerprints)
    import torch

    torch.manual_seed(config.seed)
    model = load_model(harness, config)
    if model.scorer:
        check_scoring_only(config, metrics + helpers, providers, harness.gradient_strategies)
    prefix_id = None if model.scorer else prefix_token_id(model.tokenizer, config.prefix_token)
    batch = config.batch_size if isinstance(config.batch_size, int) else DEFAULT
    access = (
        None
        if prefix_id is None
        else ModelAccess(model.model, model.tokenizer, prefix_id, method=config.scoring, batch_size=batch)
    )
    fingerprints["model"] = model_fingerprint(model)
    shared = Shared(harness, config, model, data, metrics + helpers, providers, fingerprints, prefix_id, access)
    ctx = Run(shared)
    gradients = any(learns(m, providers, harness.gradient_strategies) for m in metrics + helpers)
    shared.batch_size = resolve_batch_size(ctx, gradients)
    config.options = {name: options_record(ctx.options(name)) for name in used_plugins(ctx)}
    return ctx


def resolve_batch_size(ctx: Run, gradients: bool) -> int | str:
    """The run's sentences per forward pass: ``--batch-size``, or what ``auto`` resolves to
    (``batch_size.auto_batch_size``; gradient passes tried too where the run ``gradients``).
    An output directory resolves ``auto`` once: its run.json keeps the number for a resume,
    workers, shards and ``merge``. A model that only scores gets ``auto`` as it is."""
    config, access = ctx.config, ctx.shared.access
    if config.batch_size != AUTO or access is None:
        return config.batch_size
    size = recorded_batch_size(config)
    if size is None:
        sentences = [s for d in ctx.data.values() for p in d.train + d.validation + d.test for s in (p.good, p.bad)]
        pairs = [p for d in ctx.data.values() for p in d.train]
        size = auto_batch_size(access, sentences, pairs, ctx.gradient_params if gradients else None)
    access.batch_size = size
    return size


def refuse_other_run_early(harness: Harness, config: RunConfig, fingerprints: dict[str, Any]) -> None:
    """``refuse_other_run`` with this run's options of the plugins the old run recorded, as the
    run will record them (``Run.options``)."""
    plan = Plan(harness, config, {})
    options = {
        name: options_record(plan.options(name))
        for name in recorded_options(config.output)
        if find_plugin(harness, name) is not None
    }
    refuse_other_run(config, fingerprints, options)


def used_plugins(ctx: Run) -> list[str]:
    """The plugins (other than the executor) whose options shape this run's results."""
    names = [m.name for m in ctx.metrics] + ctx.strategies + [p.name for p in ctx.shared.providers.values()]
    names += list(ctx.config.reporters) + list(ctx.config.analysis or [])
    return [n for n in dict.fromkeys(names) if n in ctx.config.options or isinstance(ctx.plan.plugin(n), HasOptions)]


def learns(metric: Any, providers: dict[str, Any], gradient_strategies: Iterable[Any]) -> bool:
    """Whether a metric needs gradients: it reads differentials (``strategies``), or needs what a
    registered gradient strategy, or a metric that reads differentials, provides."""
    found = [providers[n] for n in needs(metric) if n in providers]
    return reads_gradients(metric) or any(reads_gradients(p) or any(p is s for s in gradient_strategies) for p in found)


def check_scoring_only(
    config: RunConfig, metrics: list[Any], providers: dict[str, Any], gradient_strategies: Iterable[Any]
) -> None:
    """A model that only scores supports neither gradients (see ``learns``) nor our prefix."""
    learners = [m.name for m in metrics if learns(m, providers, gradient_strategies)]
    if learners:
        raise UserError(f"metric {learners[0]} needs a torch model; --model {config.model} only scores")
    if config.prefix_token:
        raise UserError(
            f"--prefix-token does not apply to --model {config.model}, which scores with "
            f"its own prefix (set it in the model's arguments, e.g. prefix_token_id=ID)"
        )


def run(
    harness: Harness,
    config: RunConfig,
    *,
    merge_of: int | None = None,
    overwrite: bool = False,
    reports: list[Path] | None = None,
) -> dict[str, Any] | None:
    """Run every metric and write results.json (and pairs.jsonl) under ``config.output``.

    Units of work go through ``config.executor``. With ``config.shard = (i, n)`` only the
    i-th of n slices of the units runs and None is returned: ``merge`` assembles results.json
    once every shard has finished; ``merge_of=n`` (merge) then refuses to compute any unit.
    An output directory holds one run: another config, data or model there is refused unless
    ``overwrite``, which clears the old run's files first. The config is compared before any data
    or model loads, the data's fingerprints before the model loads. ``reports``, if given, is
    extended with the files the reporters wrote.
    """
    executor = executor_for(harness, config)
    reporters = [harness.reporters.get(n) for n in config.reporters]
    claims = merge_of is None and not overwrite  # merge keeps the shards' run.json
    ctx = prepare(harness, config, partial(refuse_other_run_early, harness, config) if claims else lambda fp: None)
    if merge_of is None:
        claim_output(config, ctx.shared.fingerprints, overwrite)
        resolved = ctx.shared.batch_size if config.batch_size == AUTO else None
        write_run_file(config, ctx.shared.fingerprints, resolved if isinstance(resolved, int) else None)
    if config.shard is not None:
        execute_units(ctx, executor, prepare, shard=config.shard)
        return None
    execute_units(ctx, executor, prepare, merge_of=merge_of)
    results = assemble(ctx)
    if config.analysis != []:
        results["analysis"] = analyse(
            harness,
            results,
            AnalysisOptions(
                permutations=config.permutations,
                seed=config.seed,
                hypothesis_files=list(config.hypotheses),
                builders=config.analysis,
            ),
        )
    write_results(config.output, results)
    for reporter in reporters:
        written = reporter.report(results, config.output)
        if reports is not None:
            reports += [Path(p) for p in written or []]
    return results


def executor_for(harness: Harness, config: RunConfig) -> Any:
    """The chosen executor (None: the core's own, in this process), checked before any work: its
    options (validated by its ``Options``) are recorded as filled, unset ones left out."""
    if config.executor == IN_PROCESS:
        return None
    executor = harness.executors.get(config.executor)
    options = options_record(Plan(harness, config, {}).options(executor.name))
    config.executor_options = {name: value for name, value in options.items() if value is not None}
    if isinstance(executor, ChecksConfig):
        executor.check(config)
    return executor


def _space(metric: Metric, ctx: Run) -> Space:
    """The space ``metric`` computes on ``ctx`` (a variant's, for the split-half ceiling)."""
    space = metric.compute(ctx).space
    if space is None:
        raise ValueError(f"metric {metric.name!r} returned a space for the run but none for {ctx.variant}")
    return space


def task_records(ctx: Run) -> dict[str, dict[str, Any]]:
    """results.json's ``tasks``: each task's labels, source, delimiter, counts, vocabulary (word
    types) and ``token_types`` (the model's token ids; None for a model without a tokenizer)."""
    options, tokenizer = DataOptions(ctx.config.data_dir, tuple(ctx.config.include_paths)), ctx.model.tokenizer
    return {
        name: {
            "phenomenon": d.task.phenomenon,
            "field": d.task.field,
            "group": d.task.group,
            "source": task_source(d.task, options),
            "delimiter": task_delimiter(d.task),
            **d.counts(),
            "vocabulary": vocabulary(d.test),
            "token_types": token_types(tokenizer, d.test, task_delimiter(d.task)),
        }
        for name, d in ctx.data.items()
    }


def add_metric(ctx: Run, metric: Metric, results: dict[str, Any]) -> dict[str, Any] | None:
    """Compute ``metric`` into ``results`` (its task fields, its space and, with ``--split-half``,
    its halves' spaces); returns its space's cost (None for a metric without a space)."""
    log.info("metric %s", metric.name)
    start = time.perf_counter()
    out = metric.compute(ctx)
    compute_s = time.perf_counter() - start
    for task_name, fields in out.task_fields.items():
        results["tasks"][task_name].update(fields)
    if out.space is None:
        return None
    space = results["spaces"][metric.name] = out.space.to_json()
    halves_s = None
    if ctx.config.split_half and reads_gradients(metric):
        start = time.perf_counter()
        halves_ = {v[-1]: _space(metric, ctx.for_variant(v)).matrix for v in VARIANTS}
        halves_s = time.perf_counter() - start
        space["split_half"] = {
            **halves_,
            "n_train": [len(ctx.for_variant("half-a").data[t].train) for t in ctx.task_names],
        }
    return space_cost(ctx, metric, compute_s, halves_s)


def pair_rows(ctx: Run) -> Iterator[dict[str, Any]]:
    """pairs.jsonl's rows: every test pair's sentences, log-probs and token counts."""
    for scores in ctx.scores("test").values():
        for s in scores:
            yield {
                "task": s.task,
                "pairID": s.pair_id,
                "sentence_good": s.good,
                "sentence_bad": s.bad,
                "logp_good": s.logp_good,
                "logp_bad": s.logp_bad,
                "n_good": s.n_good,
                "n_bad": s.n_bad,
            }


def assemble(ctx: Run) -> dict[str, Any]:
    """results.json from the finished units: tasks, each metric's fields and space, pairs."""
    config = ctx.config
    probe = [s for d in ctx.data.values() for p in d.test[:2] for s in (p.good, p.bad)][:8]
    access = ctx.shared.access
    record = {
        **ctx.model.record(),
        "prefix_token_id": ctx.prefix_id,
        "scoring": access.decide(probe) if access and probe else None,
        "batch_size": ctx.shared.batch_size,
    }
    results = new_results(config.to_json(), record, config.execution_json())
    results["fingerprints"] = ctx.shared.fingerprints
    results["tasks"] = task_records(ctx)
    asked = [m.name for m in resolve_metrics(ctx.harness, config.metrics)]
    costs = {m.name: cost for m in ctx.metrics if m.name in asked and (cost := add_metric(ctx, m, results)) is not None}
    mark_shared(costs)
    results["execution"]["costs"] = costs  # measured, not computed: like the rest of execution, it varies
    if ctx.has_scores("test"):
        write_pairs(config.output, pair_rows(ctx))
    return results
