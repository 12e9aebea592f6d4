"""The runner's :class:`lingspace_harness.RunContext`: one run's data, plugins, options and
units, for the run's own data or a split-half variant of it. Its scores live in
``score_cache``, its gradient differentials in ``gradient_cache``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .access import ModelAccess
from .batch_size import DEFAULT
from .capabilities import needs
from .config import RunConfig
from .errors import UserError
from .fingerprints import UNIT_FORMAT
from .gradient_cache import VARIANTS, Buffers, compute_gradient, halves, pending_gradients, stored_gradient
from .gradients import ParamLayout, layout_of, select_parameters
from .models import LoadedModel
from .pairs import MinimalPair, PairScore
from .plan import Plan
from .plugins import Harness
from .protocols import GradientStrategy, Metric
from .score_cache import ScoreCache, delimiter, score_pairs
from .tasks import TaskData
from .units import UnitStore

__all__ = ["VARIANTS", "Run", "Shared", "halves"]


@dataclass
class Shared:
    """What every variant of a run shares: its plan (plugins, config, metrics, providers,
    options), model, data, fingerprints and scores."""

    plan: Plan
    model: LoadedModel
    data: dict[str, TaskData]
    fingerprints: dict[str, Any]
    prefix_id: int | None
    access: ModelAccess | None
    scores: ScoreCache = field(default_factory=ScoreCache)
    variants: dict[str, Run] = field(default_factory=dict)
    params: list[tuple[str, Any]] | None = None
    buffers: Buffers = field(default_factory=Buffers)
    batch_size: int | str = DEFAULT  # sentences per forward pass, ``auto`` resolved (see ``runner.resolve_batch_size``)

    @property
    def harness(self) -> Harness:
        return self.plan.harness

    @property
    def config(self) -> RunConfig:
        return self.plan.config

    @property
    def metrics(self) -> list[Metric]:
        return self.plan.run_metrics

    @property
    def providers(self) -> Mapping[str, Metric | GradientStrategy]:
        return self.plan.providers


class Run:
    """A run (or one split-half variant of it), as metrics see it."""

    def __init__(self, shared: Shared, variant: str = "") -> None:
        if variant and variant not in VARIANTS:
            raise ValueError(f"unknown data variant {variant!r}")
        self.shared, self.variant = shared, variant
        shared.variants.setdefault(variant, self)
        self.harness, self.config, self.model = shared.harness, shared.config, shared.model
        self.plan = shared.plan
        self.metrics = shared.metrics
        self.prefix_id = shared.prefix_id
        half = VARIANTS.index(variant) if variant else None
        self.data: dict[str, TaskData] = (
            shared.data
            if half is None
            else {t: TaskData(d.task, halves(d.train)[half], d.validation, d.test) for t, d in shared.data.items()}
        )

    def for_variant(self, variant: str) -> Run:
        """The same run on a variant of the data (validation and test are unchanged; units of a
        variant are stored apart from the run's own, test scores are shared)."""
        if variant not in self.shared.variants:
            self.shared.variants[variant] = Run(self.shared, variant)
        return self.shared.variants[variant]

    def variants(self) -> list[Run]:
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
    def options(self, plugin: str, kind: str | None = None) -> Any:
        """A plugin's options (its ``Options`` dataclass, or a dict), as the plan resolved them
        (``Plan.options``: without ``kind``, the first optioned kind with that name)."""
        return self.plan.options(plugin, kind)

    def provider(self, capability: str) -> Metric | GradientStrategy:
        """The metric or gradient strategy that provides ``capability`` to this run."""
        return self.plan.provider(capability)

    def needed(self, capability: str) -> bool:
        """Whether a metric of this run needs ``capability``."""
        return any(capability in needs(m) for m in self.metrics)

    # -- units --------------------------------------------------------------------------
    def unit_key(self) -> dict[str, Any]:
        """What every unit's result depends on: the model and the data (fingerprints), the
        scoring settings, the seed and the unit format."""
        c, f = self.config, self.shared.fingerprints
        return {
            "format": UNIT_FORMAT,
            "model": f["model"],
            "data": f["data"],
            "seed": c.seed,
            "dtype": self.model.dtype,
            "device": self.model.device,
            "prefix_id": self.prefix_id,
            "scoring": c.scoring,
            "batch_size": self.shared.batch_size,
        }

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

    @property
    def strategies(self) -> list[str]:
        """The gradient strategies the run's metrics need, in order (resolved in the plan)."""
        return list(self.plan.strategies)

    def pending_gradients(self, strategies: list[str] | None = None) -> list[str]:
        """Tasks whose differential is not stored yet (``gradient_cache.pending_gradients``) for
        ``strategies`` (default: the run's)."""
        return pending_gradients(self, self.strategies if strategies is None else strategies)

    def compute_gradient(self, task: str, strategies: list[str] | None = None) -> None:
        """One gradient unit (``gradient_cache.compute_gradient``), for the run's strategies by default."""
        compute_gradient(self, task, self.strategies if strategies is None else strategies, self.shared.buffers)

    def gradient(self, strategy: str, task: str) -> np.ndarray:
        """A task's stored reduction (memory-mapped); computes it if missing."""
        return stored_gradient(self, strategy, task, self.shared.buffers)

    # -- scores -------------------------------------------------------------------------
    def delimiter(self, task: str) -> str:
        """What ``task``'s sentences are scored after (a space for a task not in the run)."""
        return delimiter(self, task)

    def has_scores(self, split: str) -> bool:
        return self.shared.scores.has(split)

    def scores(self, split: str = "test") -> dict[str, list[PairScore]]:
        """Every pair of ``split`` in every task, scored once (``ScoreCache.scores``)."""
        return self.shared.scores.scores(self, split)

    def score_pairs(
        self, pairs_by_task: Mapping[str, Sequence[MinimalPair]], desc: str = "scoring"
    ) -> dict[str, list[PairScore]]:
        """Score arbitrary pairs with the run's model and settings (uncached; ``score_cache.score_pairs``)."""
        return score_pairs(self, pairs_by_task, desc)
