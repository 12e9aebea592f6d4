"""One ``run``: select tasks, load their data and the model, compute metrics, write results."""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .gradients import ParamLayout, gradient_differential, layout_of, select_parameters
from .models import LoadedModel, ModelOptions, resolve_loader
from .plugins import Harness
from .progress import progress_bar
from .protocols import GradientOptions, Metric
from .results import new_results, write_pairs, write_results
from .scoring import prefix_token_id, score_requests, sentence_requests
from .tasks import SPLIT_FRACTIONS, DataOptions, TaskData, load_task_data
from .units import UnitStore

log = logging.getLogger("lingspace_harness")

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

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["output"] = str(self.output)
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        return out


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
        self.prefix_id = prefix_token_id(model.tokenizer, config.prefix_token)
        self._scores: dict[str, dict[str, list[PairScore]]] = {}
        self._params: list[tuple[str, Any]] | None = None

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
                "split_fractions": list(c.split_fractions)}

    def units(self, kind: str, **settings: Any) -> UnitStore:
        """The store of finished units of ``kind`` under the output directory."""
        return UnitStore(self.config.output, kind, {**self.unit_key(), "kind": kind, **settings})

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

    def ensure_gradients(self, strategies: list[str]) -> None:
        """Compute each task's training-split differential once and store every strategy's
        reduction of it; tasks whose units exist already are skipped."""
        chosen = [self.harness.gradient_strategies.get(s) for s in dict.fromkeys(strategies)]
        todo = [t for t in self.data if any(not self._gradient_store(s.name).has(t, ".npy") for s in chosen)]
        if not todo:
            return
        layout, options = self.gradient_layout, self.gradient_options
        with progress_bar(len(todo), "gradient differentials", unit="task") as bar:
            for task in todo:
                grad = gradient_differential(self.model.model, self.model.tokenizer, self.data[task].train,
                                             self.prefix_id, self.gradient_params,
                                             batch_size=self.config.batch_size)
                for strategy in chosen:
                    store = self._gradient_store(strategy.name)
                    if not store.has(task, ".npy"):
                        store.save_array(task, strategy.reduce(grad, layout, options))
                del grad
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
        """Log-probs of every pair of ``split`` in every task, scored together once."""
        if split not in self._scores:
            self._scores[split] = self.score_pairs(
                {name: d.split(split) for name, d in self.data.items()}, desc=f"scoring {split}")
        return self._scores[split]

    def score_pairs(self, pairs_by_task: dict[str, list], desc: str = "scoring") -> dict[str, list[PairScore]]:
        """Score arbitrary pairs with the run's model and settings (uncached)."""
        flat = [(t, p) for t, ps in pairs_by_task.items() for p in ps]
        sentences = [s for _, p in flat for s in (p.good, p.bad)]
        requests = sentence_requests(self.model.tokenizer, sentences, self.prefix_id)
        with progress_bar(len(requests), desc, unit="sent") as bar:
            logps = score_requests(self.model.model, requests, batch_size=self.config.batch_size,
                                   method=self.config.scoring, progress=bar.update)
        out: dict[str, list[PairScore]] = {t: [] for t in pairs_by_task}
        for k, (t, p) in enumerate(flat):
            out[t].append(PairScore(t, p.pair_id, p.good, p.bad, float(logps[2 * k]), float(logps[2 * k + 1])))
        return out


def resolve_metrics(harness: Harness, names: list[str]) -> list[Metric]:
    ordered = [BASE_METRIC] + [n for n in names if n != BASE_METRIC]
    return [harness.metrics.get(n) for n in dict.fromkeys(ordered)]


def load_data(harness: Harness, config: RunConfig) -> dict[str, TaskData]:
    tasks = harness.tasks.select(config.tasks)
    options = DataOptions(data_dir=config.data_dir)
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
                           cache_dir=cache_dir())
    return loader.load(spec, options)


def run(harness: Harness, config: RunConfig) -> dict[str, Any]:
    """Run every metric and write results.json (and pairs.jsonl) under ``config.output``."""
    import torch

    if config.limit is not None and config.limit < 1:
        raise UserError("--limit must be at least 1")
    if config.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    metrics = resolve_metrics(harness, config.metrics)
    reporters = [harness.reporters.get(n) for n in config.reporters]
    data = load_data(harness, config)
    learners = [m.name for m in metrics if hasattr(m, "strategies")]
    empty = [name for name, d in data.items() if not d.train]
    if learners and empty:
        raise UserError(f"metric {learners[0]!r} learns from training pairs, but task {empty[0]!r} has none "
                        f"(--split-fractions {','.join(map(str, config.split_fractions))}, --limit {config.limit})")
    torch.manual_seed(config.seed)
    model = load_model(harness, config)
    ctx = RunContext(harness, config, model, data)
    results = new_results(config.to_json(), {**model.record(), "prefix_token_id": ctx.prefix_id})
    for name, d in data.items():
        task = d.task
        results["tasks"][name] = {"phenomenon": task.phenomenon, "field": task.field,
                                  "group": task.group, "source": task.source, **d.counts()}
    strategies = [s for m in metrics for s in getattr(m, "strategies", lambda ctx: [])(ctx)]
    if strategies:
        ctx.ensure_gradients(strategies)
    for metric in metrics:
        log.info("metric %s", metric.name)
        out = metric.compute(ctx)
        for task_name, fields in out.task_fields.items():
            results["tasks"][task_name].update(fields)
        if out.space is not None:
            results["spaces"][metric.name] = out.space.to_json()
    if ctx.has_scores("test"):
        write_pairs(config.output, (
            {"task": s.task, "pairID": s.pair_id, "sentence_good": s.good, "sentence_bad": s.bad,
             "logp_good": s.logp_good, "logp_bad": s.logp_bad}
            for scores in ctx.scores("test").values() for s in scores))
    write_results(config.output, results)
    for reporter in reporters:
        reporter.report(results, config.output)
    return results
