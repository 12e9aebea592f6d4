"""One ``run``: select tasks, load their data and the model, compute metrics, write results."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import AnalysisOptions, analyse, hypothesis_from_file
from .errors import UserError
from .gradients import ParamLayout, gradient_differential, layout_of, select_parameters
from .models import LoadedModel, ModelOptions, resolve_loader
from .plugins import Harness
from .progress import progress_bar
from .protocols import GradientOptions, Metric
from .results import new_results, write_pairs, write_results
from .scoring import prefix_token_id, score_requests, sentence_requests
from .tasks import SPLIT_FRACTIONS, DataOptions, TaskData, load_task_data, select_tasks, task_source
from .units import UnitStore

log = logging.getLogger("lingspace_harness")
WORD = re.compile(r"[\w']+")

#: Always computed: every space is read against the tasks' base accuracy.
BASE_METRIC = "accuracy"


def cache_dir() -> Path:
    """Where dequantised models and other reusable artefacts live (``LINGSPACE_CACHE_DIR``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lingspace_harness"
    return Path(os.environ.get("LINGSPACE_CACHE_DIR", default))


@dataclass
class RunConfig:
    """Every option of a run; recorded verbatim under ``config`` in results.json."""

    model: str
    tasks: list[str]
    metrics: list[str] = field(default_factory=lambda: [BASE_METRIC])
    output: Path = Path("out")
    data_dir: Path | None = None
    include_paths: list[Path] = field(default_factory=list)
    limit: int | None = None
    seed: int = 0
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    device: str = "cpu"
    dtype: str = "float32"
    revision: str | None = None
    batch_size: int = 128
    prefix_token: str | None = None
    scoring: str = "auto"
    reporters: list[str] = field(default_factory=list)
    # gradient differentials
    gradsim_strategy: str = "full"
    topk: float = 0.01
    projection_dim: int = 1024
    include_embeddings: bool = False
    gradient_dtype: str = "float32"
    # FTGD fine-tuning (transfer, lookahead)
    ftgd_lr: float = 1e-4
    ftgd_steps: int = 40
    ftgd_batch: int = 16
    ftgd_eval_every: int = 5
    ftgd_patience: int = 2
    lookahead_steps: int = 3
    transfer_baseline: bool = False
    cka_reference: str | None = None
    split_half: bool = False
    # analysis of the finished spaces (see ``lingspace-harness analyse``)
    analysis: list[str] | None = None
    permutations: int = 10000
    hypotheses: list[Path] = field(default_factory=list)
    # execution: how units are run; never changes the results
    executor: str = "serial"
    executor_options: dict[str, Any] = field(default_factory=dict)
    shard: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        """The settings that determine the results (execution settings are left out)."""
        out = asdict(self)
        for name in EXECUTION_FIELDS:
            del out[name]
        out["output"] = str(self.output)
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        out["hypotheses"] = [str(h) for h in self.hypotheses]
        out["include_paths"] = [str(p) for p in self.include_paths]
        return out

    def execution_json(self) -> dict[str, Any]:
        return {"executor": self.executor, "options": dict(self.executor_options),
                "shard": list(self.shard) if self.shard else None}

    @classmethod
    def from_json(cls, data: dict[str, Any], execution: dict[str, Any] | None = None) -> "RunConfig":
        """The inverse of ``to_json`` (plus ``execution_json``)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["output"] = Path(known["output"])
        known["data_dir"] = Path(known["data_dir"]) if known.get("data_dir") else None
        known["split_fractions"] = tuple(known.get("split_fractions", SPLIT_FRACTIONS))
        known["hypotheses"] = [Path(h) for h in known.get("hypotheses", [])]
        known["include_paths"] = [Path(p) for p in known.get("include_paths", [])]
        if execution:
            known["executor"] = execution.get("executor", "serial")
            known["executor_options"] = dict(execution.get("options") or {})
            known["shard"] = tuple(execution["shard"]) if execution.get("shard") else None
        return cls(**known)


EXECUTION_FIELDS = ("executor", "executor_options", "shard")
#: Data variants of a run: the two halves of each task's training pairs (noise ceiling).
VARIANTS = ("half-a", "half-b")


def halves(pairs: list) -> tuple[list, list]:
    """The first and second half of a (seeded, shuffled) training split."""
    return pairs[:len(pairs) // 2], pairs[len(pairs) // 2:]


@dataclass
class PairScore:
    task: str
    pair_id: str
    good: str
    bad: str
    logp_good: float
    logp_bad: float

    @property
    def margin(self) -> float:
        return self.logp_good - self.logp_bad


class RunContext:
    """What metrics see: the config, the model, each task's split data, and cached scores."""

    def __init__(self, harness: Harness, config: RunConfig, model: LoadedModel,
                 data: dict[str, TaskData]) -> None:
        self.harness = harness
        self.config = config
        self.model = model
        self.data = data
        # A model that only scores (lm-eval's LMs) applies lm-eval's prefix itself.
        self.prefix_id = None if model.scorer else prefix_token_id(model.tokenizer, config.prefix_token)
        self.metrics = resolve_metrics(harness, config.metrics)
        #: Per-run cache for helpers (e.g. token counts); cleared with the context.
        self.memo: dict[str, Any] = {}
        self._scores: dict[str, dict[str, list[PairScore]]] = {}
        self._params: list[tuple[str, Any]] | None = None
        self._strategies: list[str] | None = None
        #: "" for the run's data; "half-a"/"half-b" for the split-half noise ceiling.
        self.variant = ""
        self._variants: dict[str, RunContext] = {}

    def for_variant(self, variant: str) -> "RunContext":
        """The same run on a variant of the data: ``half-a``/``half-b`` keep the first/second half
        of every task's training pairs (validation and test are unchanged). Units of a variant
        are stored apart from the run's own; test scores are shared."""
        if variant == self.variant:
            return self
        if self.variant:
            return self._parent.for_variant(variant)  # type: ignore[attr-defined]
        if variant not in VARIANTS:
            raise ValueError(f"unknown data variant {variant!r}")
        if variant not in self._variants:
            child = object.__new__(RunContext)
            child.__dict__.update(self.__dict__)
            half = VARIANTS.index(variant)
            child.data = {t: TaskData(d.task, halves(d.train)[half], d.validation, d.test)
                          for t, d in self.data.items()}
            child.variant, child._variants, child._parent, child._strategies = variant, {}, self, None
            self._variants[variant] = child
        return self._variants[variant]

    def variants(self) -> list["RunContext"]:
        """This run, then its split halves if ``--split-half`` asked for them."""
        return [self] + ([self.for_variant(v) for v in VARIANTS] if self.config.split_half else [])

    @property
    def task_names(self) -> list[str]:
        return list(self.data)

    # -- units of work -------------------------------------------------------------
    def unit_key(self) -> dict[str, Any]:
        """What every unit's result depends on (model, data, seed, prefix)."""
        c = self.config
        return {"model": self.model.name, "revision": self.model.revision, "dtype": self.model.dtype,
                "n_params": self.model.n_params, "seed": c.seed, "limit": c.limit,
                "data_dir": str(c.data_dir) if c.data_dir else None, "prefix_id": self.prefix_id,
                "split_fractions": list(c.split_fractions),
                **({"include_paths": [str(p) for p in c.include_paths]} if c.include_paths else {})}

    def units(self, kind: str, **settings: Any) -> UnitStore:
        """The store of finished units of ``kind`` under the output directory (a data variant's
        units apart, except test scores, which do not depend on the training pairs)."""
        variant = {"variant": self.variant} if self.variant and not kind.startswith("scores-") else {}
        return UnitStore(self.config.output, kind, {**self.unit_key(), "kind": kind, **variant, **settings})

    # -- gradient differentials ----------------------------------------------------
    @property
    def gradient_options(self) -> GradientOptions:
        c = self.config
        return GradientOptions(topk=c.topk, projection_dim=c.projection_dim,
                               include_embeddings=c.include_embeddings, storage_dtype=c.gradient_dtype,
                               seed=c.seed)

    @property
    def gradient_params(self) -> list[tuple[str, Any]]:
        if self._params is None:
            self._params = select_parameters(self.model.model, self.config.include_embeddings)
        return self._params

    @property
    def gradient_layout(self) -> ParamLayout:
        return layout_of(self.gradient_params)

    def _gradient_store(self, strategy: str) -> UnitStore:
        """Units keyed by the options the strategy depends on (its ``key(options)``, else all)."""
        options = self.gradient_options
        chosen = self.harness.gradient_strategies.get(strategy)
        settings = chosen.key(options) if hasattr(chosen, "key") else options.__dict__
        return self.units(f"gradient-{strategy}", split="train",
                          include_embeddings=options.include_embeddings, options=settings)

    @property
    def strategies(self) -> list[str]:
        """The gradient strategies the run's metrics need, in order."""
        if self._strategies is None:
            wanted = [s for m in self.metrics for s in getattr(m, "strategies", lambda ctx: [])(self)]
            self._strategies = list(dict.fromkeys(wanted))
        return self._strategies

    def pending_gradients(self, strategies: list[str] | None = None) -> list[str]:
        """Tasks whose differential is not stored yet for some of ``strategies`` (default: the run's)."""
        names = self.strategies if strategies is None else strategies
        return [t for t in self.data if any(not self._gradient_store(s).has(t, ".npy") for s in names)]

    def compute_gradient(self, task: str, strategies: list[str] | None = None) -> None:
        """One unit: a task's training-split differential, reduced and stored by each strategy."""
        chosen = [self.harness.gradient_strategies.get(s)
                  for s in dict.fromkeys(self.strategies if strategies is None else strategies)]
        grad = gradient_differential(self.model.model, self.model.tokenizer, self.data[task].train,
                                     self.prefix_id, self.gradient_params, batch_size=self.config.batch_size)
        layout, options = self.gradient_layout, self.gradient_options
        for strategy in chosen:
            store = self._gradient_store(strategy.name)
            if not store.has(task, ".npy"):
                store.save_array(task, strategy.reduce(grad, layout, options))

    def ensure_gradients(self, strategies: list[str]) -> None:
        """Compute each task's training-split differential once and store every strategy's
        reduction of it; tasks whose units exist already are skipped."""
        todo = self.pending_gradients(list(dict.fromkeys(strategies)))
        with progress_bar(len(todo), "gradient differentials", unit="task") as bar:
            for task in todo:
                self.compute_gradient(task, strategies)
                bar.update(1)

    def gradient(self, strategy: str, task: str) -> np.ndarray:
        """A task's stored reduction (memory-mapped); computes it if missing."""
        store = self._gradient_store(strategy)
        if not store.has(task, ".npy"):
            self.ensure_gradients([strategy])
        return store.load_array(task)

    def has_scores(self, split: str) -> bool:
        return split in self._scores

    def scores(self, split: str = "test") -> dict[str, list[PairScore]]:
        """Log-probs of every pair of ``split`` in every task, stored per task as units. Unless
        all are stored, every task is scored in one pass: the batch composition, and so every
        float, is then the same whichever process (or shard) scores them first."""
        if split not in self._scores:
            store = self.units(f"scores-{split}")
            if all(store.has(t, ".json") for t in self.task_names):
                scores = {t: [PairScore(**row) for row in store.load_json(t)] for t in self.task_names}
            else:
                scores = self.score_pairs({t: d.split(split) for t, d in self.data.items()},
                                          desc=f"scoring {split}")
                for task, rows in scores.items():
                    store.save_json(task, [asdict(s) for s in rows])
            self._scores[split] = scores
        return self._scores[split]

    def score_pairs(self, pairs_by_task: dict[str, list], desc: str = "scoring") -> dict[str, list[PairScore]]:
        """Score arbitrary pairs with the run's model and settings (uncached)."""
        flat = [(t, p) for t, ps in pairs_by_task.items() for p in ps]
        sentences = [s for _, p in flat for s in (p.good, p.bad)]
        with progress_bar(len(sentences), desc, unit="sent") as bar:
            if self.model.scorer:
                logps = list(self.model.scorer(sentences))
                bar.update(len(sentences))
            else:
                requests = sentence_requests(self.model.tokenizer, sentences, self.prefix_id)
                logps = score_requests(self.model.model, requests, batch_size=self.config.batch_size,
                                       method=self.config.scoring, progress=bar.update)
        out: dict[str, list[PairScore]] = {t: [] for t in pairs_by_task}
        for k, (t, p) in enumerate(flat):
            out[t].append(PairScore(t, p.pair_id, p.good, p.bad, float(logps[2 * k]), float(logps[2 * k + 1])))
        return out


def vocabulary(pairs: list) -> list[str]:
    """The distinct lower-cased word types of the pairs (the lexical-overlap control)."""
    return sorted({w for p in pairs for text in (p.good, p.bad) for w in WORD.findall(text.lower())})


def resolve_metrics(harness: Harness, names: list[str]) -> list[Metric]:
    ordered = [BASE_METRIC] + [n for n in names if n != BASE_METRIC]
    return [harness.metrics.get(n) for n in dict.fromkeys(ordered)]


def load_data(harness: Harness, config: RunConfig) -> dict[str, TaskData]:
    options = DataOptions(data_dir=config.data_dir, include_paths=tuple(config.include_paths))
    tasks = select_tasks(harness.tasks, harness.task_sources, config.tasks, options)
    data = {}
    with progress_bar(len(tasks), "loading tasks", unit="task") as bar:
        for task in tasks:
            data[task.name] = load_task_data(task, options, seed=config.seed, limit=config.limit,
                                             fractions=config.split_fractions)
            bar.update(1)
    return data


def load_model(harness: Harness, config: RunConfig) -> LoadedModel:
    loader, spec = resolve_loader(harness.model_loaders, config.model)
    options = ModelOptions(revision=config.revision, dtype=config.dtype, device=config.device,
                           cache_dir=cache_dir(), batch_size=config.batch_size)
    return loader.load(spec, options)


def prepare(harness: Harness, config: RunConfig) -> RunContext:
    """Check the config, load every task's data and the model: what a run and its workers share."""
    import torch

    if config.limit is not None and config.limit < 1:
        raise UserError("--limit must be at least 1")
    if config.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    metrics = resolve_metrics(harness, config.metrics)
    if getattr(resolve_loader(harness.model_loaders, config.model)[0], "scores_only", False):
        check_scoring_only(config, metrics)  # before any data or model is loaded
    for builder in config.analysis or []:
        harness.space_builders.get(builder)
    for path in config.hypotheses:  # a bad file fails now, not after hours of work
        hypothesis_from_file(path)
    data = load_data(harness, config)
    learners = [m.name for m in metrics if hasattr(m, "strategies")]
    empty = [name for name, d in data.items() if len(d.train) < (2 if config.split_half else 1)]
    if learners and empty:
        raise UserError(f"metric {learners[0]!r} learns from training pairs, but task {empty[0]!r} has "
                        f"{'too few to halve' if config.split_half and data[empty[0]].train else 'none'} "
                        f"(--split-fractions {','.join(map(str, config.split_fractions))}, --limit {config.limit})")
    torch.manual_seed(config.seed)
    model = load_model(harness, config)
    if model.scorer:
        check_scoring_only(config, metrics)
    return RunContext(harness, config, model, data)


def check_scoring_only(config: RunConfig, metrics: list[Metric]) -> None:
    """A model that only scores supports neither gradients (metrics with ``strategies``) nor our prefix."""
    learners = [m.name for m in metrics if hasattr(m, "strategies")]
    if learners:
        raise UserError(f"metric {learners[0]} needs a torch model; --model {config.model} only scores")
    if config.prefix_token:
        raise UserError(f"--prefix-token does not apply to --model {config.model}, which scores with "
                        f"its own prefix (set it in the model's arguments, e.g. prefix_token_id=ID)")


def run(harness: Harness, config: RunConfig, *, merge_of: int | None = None) -> dict[str, Any] | None:
    """Run every metric and write results.json (and pairs.jsonl) under ``config.output``.

    Units of work go through ``config.executor``. With ``config.shard = (i, n)`` only the
    i-th of n slices of the units runs and None is returned: ``merge`` assembles results.json
    once every shard has finished; ``merge_of=n`` (merge) then refuses to compute any unit.
    """
    from .execution import execute_units, write_run_file

    executor = harness.executors.get(config.executor)
    getattr(executor, "check", lambda config: None)(config)
    reporters = [harness.reporters.get(n) for n in config.reporters]
    ctx = prepare(harness, config)
    if merge_of is None:  # merge keeps the shards' run.json
        write_run_file(config)
    if config.shard is not None:
        execute_units(ctx, executor, shard=config.shard)
        return None
    execute_units(ctx, executor, merge_of=merge_of)
    results = new_results(config.to_json(), {**ctx.model.record(), "prefix_token_id": ctx.prefix_id},
                          config.execution_json())
    for name, d in ctx.data.items():
        task = d.task
        results["tasks"][name] = {"phenomenon": task.phenomenon, "field": task.field, "group": task.group,
                                  "source": task_source(task, DataOptions(config.data_dir,
                                                                          tuple(config.include_paths))),
                                  **d.counts(), "vocabulary": vocabulary(d.test)}
    for metric in ctx.metrics:
        log.info("metric %s", metric.name)
        out = metric.compute(ctx)
        for task_name, fields in out.task_fields.items():
            results["tasks"][task_name].update(fields)
        if out.space is not None:
            results["spaces"][metric.name] = out.space.to_json()
            if config.split_half and hasattr(metric, "strategies"):
                halves_ = {v[-1]: metric.compute(ctx.for_variant(v)).space.matrix for v in VARIANTS}
                results["spaces"][metric.name]["split_half"] = {
                    **halves_, "n_train": [len(ctx.for_variant("half-a").data[t].train) for t in ctx.task_names]}
    if ctx.has_scores("test"):
        write_pairs(config.output, (
            {"task": s.task, "pairID": s.pair_id, "sentence_good": s.good, "sentence_bad": s.bad,
             "logp_good": s.logp_good, "logp_bad": s.logp_bad}
            for scores in ctx.scores("test").values() for s in scores))
    if config.analysis != []:
        results["analysis"] = analyse(harness, results, AnalysisOptions(
            permutations=config.permutations, seed=config.seed, hypothesis_files=list(config.hypotheses),
            builders=config.analysis))
    write_results(config.output, results)
    for reporter in reporters:
        reporter.report(results, config.output)
    return results
