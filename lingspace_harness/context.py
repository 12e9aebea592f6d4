"""The runner's :class:`lingspace_harness.RunContext`: one run's data, model access, scores,
units and options, for the run's own data or a split-half variant of it."""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .access import ModelAccess
from .capabilities import needs, strategies
from .config import RunConfig, plugin_options
from .errors import UserError
from .fingerprints import UNIT_FORMAT
from .gradients import ParamLayout, layout_of, select_parameters
from .models import LoadedModel
from .pairs import MinimalPair, PairScore
from .progress import progress_bar
from .tasks import TaskData, task_delimiter
from .units import UnitStore

#: Data variants of a run: the two halves of each task's training pairs (noise ceiling).
VARIANTS = ("half-a", "half-b")


def halves(pairs: list) -> tuple[list, list]:
    """The first and second half of a (seeded, shuffled) training split."""
    return pairs[:len(pairs) // 2], pairs[len(pairs) // 2:]


def options_record(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else dict(value)


def find_plugin(harness: Any, name: str) -> Any:
    """The plugin object (metric, strategy, reporter, ...) registered as ``name``, or None."""
    for registry in harness.registries.values():
        if name in registry:
            return registry.get(name)
    return None


@dataclass
class Shared:
    """What every variant of a run shares: plugins, config, model, metrics, fingerprints, scores."""

    harness: Any
    config: RunConfig
    model: LoadedModel
    data: dict[str, TaskData]
    metrics: list[Any]
    providers: dict[str, Any]
    fingerprints: dict[str, Any]
    prefix_id: int | None
    access: ModelAccess | None
    scores: dict[str, dict[str, list[PairScore]]] = field(default_factory=dict)
    variants: dict[str, "Run"] = field(default_factory=dict)
    params: list[tuple[str, Any]] | None = None
    workspace: list[np.ndarray] = field(default_factory=list)

    def buffers(self, n: int, size: int) -> list[np.ndarray]:
        """``n`` float32 vectors of ``size`` entries for gradient differentials, kept between
        gradient units (new memory costs page faults: ~0.3 s per SmolLM2 differential)."""
        if len(self.workspace) < n or self.workspace[0].size != size:
            self.workspace = [np.empty(size, dtype=np.float32) for _ in range(max(n, len(self.workspace)))]
        return self.workspace[:n]

    def release_buffers(self) -> None:
        """Free the gradient vectors (when a run's gradient units are done)."""
        self.workspace = []


class Run:
    """A run (or one split-half variant of it), as metrics see it."""

    def __init__(self, shared: Shared, variant: str = "") -> None:
        if variant and variant not in VARIANTS:
            raise ValueError(f"unknown data variant {variant!r}")
        self.shared, self.variant = shared, variant
        shared.variants.setdefault(variant, self)
        self.harness, self.config, self.model = shared.harness, shared.config, shared.model
        self.metrics = shared.metrics
        self.prefix_id = shared.prefix_id
        half = VARIANTS.index(variant) if variant else None
        self.data: dict[str, TaskData] = shared.data if half is None else {
            t: TaskData(d.task, halves(d.train)[half], d.validation, d.test) for t, d in shared.data.items()}

    def for_variant(self, variant: str) -> "Run":
        """The same run on a variant of the data (validation and test are unchanged; units of a
        variant are stored apart from the run's own, test scores are shared)."""
        if variant not in self.shared.variants:
            self.shared.variants[variant] = Run(self.shared, variant)
        return self.shared.variants[variant]

    def variants(self) -> list["Run"]:
        """This run, then its split halves if ``--split-half`` asked for them."""
        return [self] + ([self.for_variant(v) for v in VARIANTS] if self.config.split_half else [])

    @property
    def task_names(self) -> list[str]:
        return list(self.data)

    @property
    def access(self) -> ModelAccess:
        if self.shared.access is None:
            raise UserError(f"--model {self.config.model} only scores; this needs a torch model")
        return self.shared.access

    # -- plugins ----------------------------------------------------------------------
    def options(self, plugin: str) -> Any:
        """A plugin's options (its ``Options`` dataclass, or a dict), from the run's config."""
        obj = self._plugin(plugin)
        return plugin_options(obj, self.config.options.get(plugin, {}), self.config.seed)

    def _plugin(self, name: str) -> Any:
        found = find_plugin(self.harness, name)
        if found is None:
            raise UserError(f"no plugin object is named {name!r}")
        return found

    def provider(self, capability: str) -> Any:
        """The metric or gradient strategy that provides ``capability`` to this run."""
        try:
            return self.shared.providers[capability]
        except KeyError as exc:
            raise UserError(f"nothing in this run provides {capability!r}") from exc

    def needed(self, capability: str) -> bool:
        """Whether a metric of this run needs ``capability``."""
        return any(capability in needs(m) for m in self.metrics)

    # -- units --------------------------------------------------------------------------
    def unit_key(self) -> dict[str, Any]:
        """What every unit's result depends on: the model and the data (fingerprints), the
        scoring settings, the seed and the unit format."""
        c, f = self.config, self.shared.fingerprints
        return {"format": UNIT_FORMAT, "model": f["model"], "data": f["data"], "seed": c.seed,
                "dtype": self.model.dtype, "device": self.model.device, "prefix_id": self.prefix_id,
                "scoring": c.scoring, "batch_size": c.batch_size}

    def units(self, kind: str, **settings: Any) -> UnitStore:
        """The store of finished units of ``kind`` under the output directory (a data variant's
        units apart, except test scores, which do not depend on the training pairs)."""
        variant = {"variant": self.variant} if self.variant and not kind.startswith("scores-") else {}
        return UnitStore(self.config.output, kind, {**self.unit_key(), "kind": kind, **variant, **settings})

    # -- gradient differentials ---------------------------------------------------------
    @property
    def gradient_params(self) -> list[tuple[str, Any]]:
        if self.shared.params is None:
            self.shared.params = select_parameters(self.access.model, self.config.include_embeddings)
        return self.shared.params

    @property
    def gradient_layout(self) -> ParamLayout:
        return layout_of(self.gradient_params)

    def _gradient_store(self, strategy: str) -> UnitStore:
        return self.units(f"gradient-{strategy}", split="train", include_embeddings=self.config.include_embeddings,
                          options=options_record(self.options(strategy)))

    @property
    def strategies(self) -> list[str]:
        """The gradient strategies the run's metrics need, in order."""
        wanted = [s for m in self.metrics for s in strategies(m, self)]
        return list(dict.fromkeys(wanted))

    def pending_gradients(self, strategies: list[str] | None = None) -> list[str]:
        """Tasks whose differential is not stored yet for some of ``strategies`` (default: the
        run's), here or, for the run itself with ``--split-half``, in one of its halves (the
        run's own unit computes them: see ``compute_gradient``)."""
        names = self.strategies if strategies is None else strategies
        runs = [self] if self.variant else self.variants()
        return [t for t in self.data if any(not r._gradient_store(s).has(t, ".npy") for r in runs for s in names)]

    def compute_gradient(self, task: str, strategies: list[str] | None = None) -> None:
        """One unit: a task's training-split differential, reduced and stored by each strategy.

        Each training pair's gradient is computed once: the run's differential is the sum of
        its two halves' (``halves``), which with ``--split-half`` are stored as the halves'
        differentials too. A half's own run computes its pairs alone, with the same batches."""
        names = list(dict.fromkeys(self.strategies if strategies is None else strategies))
        train = self.data[task].train
        size = self.gradient_layout.size
        if self.variant:
            grad, = self.access.gradient_differentials([train], self.gradient_params, delimiter=self.delimiter(task),
                                                       out=self.shared.buffers(1, size))
            self._store_reductions(task, grad, names)
            return
        total, second = self.access.gradient_differentials(halves(train), self.gradient_params,
                                                           delimiter=self.delimiter(task),
                                                           out=self.shared.buffers(2, size))
        if self.config.split_half:
            self.for_variant(VARIANTS[0])._store_reductions(task, total, names)
            self.for_variant(VARIANTS[1])._store_reductions(task, second, names)
        total += second  # in place: the first half's vector becomes the whole differential
        self._store_reductions(task, total, names)

    def _store_reductions(self, task: str, grad: np.ndarray, names: list[str]) -> None:
        """Each strategy's reduction of ``grad``, where it is not stored yet."""
        for name in names:
            store = self._gradient_store(name)
            if not store.has(task, ".npy"):
                strategy = self.harness.gradient_strategies.get(name)
                store.save_array(task, strategy.reduce(grad, self.gradient_layout, self.options(name)))

    def gradient(self, strategy: str, task: str) -> np.ndarray:
        """A task's stored reduction (memory-mapped); computes it if missing."""
        store = self._gradient_store(strategy)
        if not store.has(task, ".npy"):
            self.compute_gradient(task, [strategy])
        return store.load_array(task)

    # -- scores -------------------------------------------------------------------------
    def delimiter(self, task: str) -> str:
        """What ``task``'s sentences are scored after (a space for a task not in the run)."""
        return task_delimiter(self.data[task].task) if task in self.data else " "

    def has_scores(self, split: str) -> bool:
        return split in self.shared.scores

    def scores(self, split: str = "test") -> dict[str, list[PairScore]]:
        """Log-probs of every pair of ``split`` in every task, stored per task as units. Unless
        all are stored, every task is scored in one pass: the batch composition, and so every
        float, is then the same whichever process (or shard) scores them first."""
        if split not in self.shared.scores:
            store = self.units(f"scores-{split}")
            if all(store.has(t, ".json") for t in self.task_names):
                scores = {t: [PairScore(**row) for row in store.load_json(t)] for t in self.task_names}
            else:
                scores = self.score_pairs({t: d.split(split) for t, d in self.data.items()}, desc=f"scoring {split}")
                for task, rows in scores.items():
                    store.save_json(task, [asdict(s) for s in rows])
            self.shared.scores[split] = scores
        return self.shared.scores[split]

    def score_pairs(self, pairs_by_task: Mapping[str, Sequence[MinimalPair]],
                    desc: str = "scoring") -> dict[str, list[PairScore]]:
        """Score arbitrary pairs with the run's model and settings (uncached), each task's after
        its delimiter, with the number of tokens scored per sentence (None for a model that
        only scores)."""
        flat = [(t, p) for t, ps in pairs_by_task.items() for p in ps]
        sentences = [s for _, p in flat for s in (p.good, p.bad)]
        delimiters = [self.delimiter(t) for t, _ in flat for _ in range(2)]
        counts: list[int | None] = [None] * len(sentences)
        with progress_bar(len(sentences), desc, unit="sent") as bar:
            if self.model.scorer:
                logps = list(scorer_logprobs(self.model, sentences, delimiters))
                bar.update(len(sentences))
            else:
                logps, counts = self.access.score_counted(sentences, progress=bar.update, delimiter=delimiters)
        out: dict[str, list[PairScore]] = {t: [] for t in pairs_by_task}
        for k, (t, p) in enumerate(flat):
            out[t].append(PairScore(t, p.pair_id, p.good, p.bad, float(logps[2 * k]), float(logps[2 * k + 1]),
                                    counts[2 * k], counts[2 * k + 1]))
        return out


def scorer_logprobs(model: LoadedModel, sentences: list[str], delimiters: list[str]) -> Sequence[float]:
    """A scoring-only model's log-probs: ``scorer(sentences)``, with ``delimiter=`` (one per
    sentence) only where a sentence is not scored after a space."""
    if all(d == " " for d in delimiters):
        return model.scorer(sentences)
    if "delimiter" not in inspect.signature(model.scorer).parameters:
        odd = next(d for d in delimiters if d != " ")
        raise UserError(f"--model {model.name} scores every sentence after a space; a task here needs "
                        f"the delimiter {odd!r}")
    return model.scorer(sentences, delimiter=delimiters)

