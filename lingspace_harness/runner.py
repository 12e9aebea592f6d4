"""One ``run``: select tasks, load their data and the model, run the units, write results."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from .access import ModelAccess
from .analysis import AnalysisOptions, analyse
from .batch_size import AUTO, DEFAULT, auto_batch_size
from .capabilities import Configurable, HasOptions, reads_gradients
from .config import RunConfig
from .context import Run, Shared
from .costs import mark_shared, space_cost
from .errors import UserError
from .execution import execute_units, recorded_batch_size, write_run_file
from .fingerprints import data_fingerprints, digest, model_fingerprint
from .gradient_cache import VARIANTS
from .lexicon import token_types
from .models import LoadedModel, resolve_loader
from .outputs import claim_output, refuse_other_run
from .plan import Plan
from .plugins import Harness
from .progress import progress_bar
from .protocols import Metric, Reporter, Space
from .resolve import check_scoring_only, resolve_plan
from .results import new_results, write_pairs, write_results
from .scoring import prefix_token_id
from .tasks import DataOptions, TaskData, load_task_data, select_tasks, task_delimiter, task_source

log = logging.getLogger("lingspace_harness")
WORD = re.compile(r"[\w']+")


def vocabulary(pairs: list) -> list[str]:
    """The distinct lower-cased word types of the pairs (the lexical-overlap control)."""
    return sorted({w for p in pairs for text in (p.good, p.bad) for w in WORD.findall(text.lower())})


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


def load_model(harness: Harness, config: RunConfig, plan: Plan | None = None) -> LoadedModel:
    """The run's model, by the plan's loader (or the one ``config.model`` names)."""
    loader, spec = (plan.loader, plan.model_spec) if plan else resolve_loader(harness.model_loaders, config.model)
    return loader.load(spec, config.model_options())


def check_training_pairs(plan: Plan, data: dict[str, TaskData]) -> None:
    """Before the model loads: a run that learns (``Plan.learns``) gets training pairs in every
    task, two or more with ``--split-half`` (which halves them)."""
    config = plan.config
    need = 2 if config.split_half else 1
    short = [name for name, d in data.items() if len(d.train) < need]
    if not (plan.learns and short):
        return
    few = "too few to halve" if data[short[0]].train else "none"
    least = f"; --split-half needs --limit {need} or more" if config.limit is not None and config.limit < need else ""
    raise UserError(
        f"metric {plan.learners[0]!r} learns from training pairs, but task {short[0]!r} has {few} "
        f"(--split-fractions {','.join(map(str, config.split_fractions))}, --limit {config.limit}){least}"
    )


def prepare(
    harness: Harness,
    config: RunConfig,
    check_output: Callable[[dict[str, Any]], None] = lambda fingerprints: None,
    plan: Plan | None = None,
) -> Run:
    """Resolve the run (unless ``plan`` is given), load every task's data and the model: what a
    run and its workers share. ``check_output(fingerprints)`` runs before the data loads and again
    before the model loads, with the fingerprints known by then (see ``refuse_other_run``)."""
    plan = plan or resolve_plan(harness, config)
    check_output({})
    data = load_data(harness, config)
    check_training_pairs(plan, data)
    tasks = data_fingerprints(data)
    fingerprints = {"data": digest(tasks), "tasks": tasks}
    check_output(fingerprints)
    import torch

    torch.manual_seed(config.seed)
    model = load_model(harness, config, plan)
    if model.scorer and not plan.scores_only:  # a loader that says so only once it has loaded
        check_scoring_only(plan)
    prefix_id = None if model.scorer else prefix_token_id(model.tokenizer, config.prefix_token)
    batch = config.batch_size if isinstance(config.batch_size, int) else DEFAULT
    access = (
        None
        if prefix_id is None
        else ModelAccess(model.model, model.tokenizer, prefix_id, method=config.scoring, batch_size=batch)
    )
    fingerprints["model"] = model_fingerprint(model)
    shared = Shared(plan, model, data, fingerprints, prefix_id, access)
    ctx = Run(shared)
    shared.batch_size = resolve_batch_size(ctx, plan.learns)
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


def run(
    harness: Harness,
    config: RunConfig,
    *,
    merge_of: int | None = None,
    overwrite: bool = False,
    reports: list[Path] | None = None,
) -> dict[str, Any] | None:
    """Run every metric and write results.json (and pairs.jsonl) under ``config.output``.

    The run is resolved once (``resolve.resolve_plan``), before anything loads. Units of work go
    through ``config.executor``. With ``config.shard = (i, n)`` only the i-th of n slices of the
    units runs and None is returned: ``merge`` assembles results.json once every shard has
    finished; ``merge_of=n`` (merge) then refuses to compute any unit. An output directory holds
    one run: a run whose units conflict with the stored ones is refused unless ``overwrite``,
    which clears the old run's files first (see ``outputs``). ``reports``, if given, is extended
    with the files the reporters wrote.
    """
    plan = resolve_plan(harness, config)
    claims = merge_of is None and not overwrite  # merge keeps the shards' run.json
    ctx = prepare(harness, config, partial(refuse_other_run, plan) if claims else lambda fp: None, plan)
    if merge_of is None:
        claim_output(plan, ctx.shared.fingerprints, overwrite)
        resolved = ctx.shared.batch_size if config.batch_size == AUTO else None
        write_run_file(plan, ctx.shared.fingerprints, resolved if isinstance(resolved, int) else None)
    if config.shard is not None:
        execute_units(ctx, plan.executor, prepare, shard=config.shard)
        return None
    execute_units(ctx, plan.executor, prepare, merge_of=merge_of)
    results = assemble(ctx)
    if config.analysis != []:
        results["analysis"] = analyse(harness, results, analysis_options(plan))
    write_results(config.output, results)
    for reporter in plan.reporters:
        written = call_reporter(reporter, results, config.output, plan)
        if reports is not None:
            reports += [Path(p) for p in written or []]
    return results


def call_reporter(reporter: Reporter, results: dict[str, Any], out: Path, plan: Plan) -> list[Path]:
    """``reporter.report(results, out)``; one with options of its own (``add_arguments`` or
    ``Options``) gets them too: ``report(results, out, options)``."""
    if isinstance(reporter, (Configurable, HasOptions)):
        return list(reporter.report(results, out, plan.options(reporter.name, "reporter")) or [])  # type: ignore[call-arg]
    return list(reporter.report(results, out) or [])


def analysis_options(plan: Plan) -> AnalysisOptions:
    """What the run's space builders get: the analysis settings and each builder's own options."""
    config = plan.config
    return AnalysisOptions(
        permutations=config.permutations,
        seed=config.seed,
        hypothesis_files=list(config.hypotheses),
        builders=[b.name for b in plan.builders],
        plugins={b.name: plan.options(b.name, "space_builder") for b in plan.builders if _optioned(plan, b.name)},
    )


def _optioned(plan: Plan, builder: str) -> bool:
    return ("space_builder", builder) in plan.all_options


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
    results = new_results(ctx.plan.config_json(), record, ctx.plan.execution_json())
    results["fingerprints"] = ctx.shared.fingerprints
    results["tasks"] = task_records(ctx)
    asked = [m.name for m in ctx.plan.metrics]
    costs = {m.name: cost for m in ctx.metrics if m.name in asked and (cost := add_metric(ctx, m, results)) is not None}
    mark_shared(costs)
    results["execution"]["costs"] = costs  # measured, not computed: like the rest of execution, it varies
    if ctx.has_scores("test"):
        write_pairs(config.output, pair_rows(ctx))
    return results
