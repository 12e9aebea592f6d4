"""FTGD: fine-tuning via gradient differentials, restricted to a sparse parameter mask.

Each step minimises the pairwise logistic loss mean softplus(-(log p(good) - log p(bad))) over
a batch of training pairs. Its gradient is each pair's gradient differential, weighted by
sigmoid(-margin): pairs the model already gets right by a wide margin stop pulling, so the
objective stays bounded (plain ascent on the differential can push log p(bad) to minus
infinity and wreck the model). Adam (no weight decay) updates the masked entries only: a
gradient hook zeroes every other entry, and Adam's update of an entry whose gradient has
always been zero is exactly zero. Every ``eval_every`` steps (and after the last) the
validation margin is measured; training stops after ``patience`` evaluations without
improvement, and the best state seen (possibly the untuned one) is kept. ``restore()``
writes the saved base values back, so the model is never reloaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from lingspace_harness import MinimalPair, ModelAccess, layout_of


@dataclass(frozen=True)
class FTGDSettings:
    """Documented defaults: Adam, lr 1e-4, at most 40 steps of 16 pairs, validation every 5
    steps, stop after 2 evaluations without improvement."""

    lr: float = 1e-4
    steps: int = 40
    batch: int = 16
    eval_every: int = 5
    patience: int = 2
    early_stopping: bool = True
    seed: int = 0


@dataclass
class TuneReport:
    steps: int
    best_step: int
    validation_margins: list[float] = field(default_factory=list)


def mean_margin(access: ModelAccess, pairs: Sequence[MinimalPair]) -> float:
    return access.mean_margin(pairs)


class MaskedTuner:
    """Tunes the masked entries of ``params`` (flat indices in their layout; None: all entries)."""

    def __init__(self, model: Any, params: Sequence[tuple[str, Any]], mask: np.ndarray | None) -> None:
        import torch

        self.model = model
        self.params = [p for _, p in params]
        layout = layout_of(params)
        offsets = layout.offsets
        self.masks: list[Any] = []  # per param: a bool tensor, or None for "every entry"
        self.saved: list[Any] = []
        for i, param in enumerate(self.params):
            if mask is None:
                entry_mask = None
                saved = param.detach().clone()
            else:
                lo, hi = np.searchsorted(mask, [offsets[i], offsets[i + 1]])
                local = torch.from_numpy(mask[lo:hi] - offsets[i])
                if local.numel() == 0:
                    entry_mask = torch.zeros(param.shape, dtype=torch.bool)
                else:
                    entry_mask = torch.zeros(param.numel(), dtype=torch.bool)
                    entry_mask[local] = True
                    entry_mask = entry_mask.reshape(param.shape)
                entry_mask = entry_mask.to(param.device)
                saved = param.detach()[entry_mask].clone()
            self.masks.append(entry_mask)
            self.saved.append(saved)
        self.trainable = [i for i, m in enumerate(self.masks) if m is None or bool(m.any())]

    def restore(self) -> None:
        """Write the base values back into the tuned entries."""
        import torch

        with torch.no_grad():
            for i in self.trainable:
                if self.masks[i] is None:
                    self.params[i].copy_(self.saved[i])
                else:
                    self.params[i][self.masks[i]] = self.saved[i]

    def _snapshot(self) -> list[Any]:
        return [self.params[i].detach()[self.masks[i]].clone() if self.masks[i] is not None
                else self.params[i].detach().clone() for i in self.trainable]

    def _load(self, snapshot: list[Any]) -> None:
        import torch

        with torch.no_grad():
            for i, values in zip(self.trainable, snapshot):
                if self.masks[i] is None:
                    self.params[i].copy_(values)
                else:
                    self.params[i][self.masks[i]] = values

    def tune(self, access: ModelAccess, train: Sequence[MinimalPair],
             validation: Sequence[MinimalPair], settings: FTGDSettings,
             progress: Callable[[int], None] | None = None) -> TuneReport:
        import torch

        if not validation:  # nothing to stop on: run the fixed number of steps
            settings = FTGDSettings(**{**settings.__dict__, "early_stopping": False})
        trainable = [self.params[i] for i in self.trainable]
        previous = {id(p): p.requires_grad for _, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
        hooks = []
        for i in self.trainable:
            self.params[i].requires_grad_(True)
            if self.masks[i] is not None:
                hooks.append(self.params[i].register_hook(lambda g, m=self.masks[i]: g * m))
        optimizer = torch.optim.Adam(trainable, lr=settings.lr, weight_decay=0.0)
        rng = np.random.default_rng(settings.seed)
        order: list[int] = []
        report = TuneReport(steps=0, best_step=0)
        best = mean_margin(access, validation) if settings.early_stopping else None
        report.validation_margins.append(best if best is not None else float("nan"))
        best_state = self._snapshot() if settings.early_stopping else None
        stale = 0
        was_training = self.model.training
        self.model.eval()
        try:
            for step in range(1, settings.steps + 1):
                if len(order) < settings.batch:
                    order += rng.permutation(len(train)).tolist()
                batch = [train[j] for j in order[:settings.batch]]
                del order[:settings.batch]
                optimizer.zero_grad(set_to_none=True)
                logps = access.logprobs([s for p in batch for s in (p.good, p.bad)])
                margins = torch.stack([logps[2 * j] - logps[2 * j + 1] for j in range(len(batch))])
                torch.nn.functional.softplus(-margins).mean().backward()
                optimizer.step()
                report.steps = step
                if progress:
                    progress(1)
                last = step == settings.steps
                if settings.early_stopping and (step % settings.eval_every == 0 or last):
                    margin = mean_margin(access, validation)
                    report.validation_margins.append(margin)
                    if margin > best:
                        best, best_state, report.best_step, stale = margin, self._snapshot(), step, 0
                    else:
                        stale += 1
                        if stale >= settings.patience:
                            break
            if settings.early_stopping:
                self._load(best_state)
            else:
                report.best_step = report.steps
        finally:
            for hook in hooks:
                hook.remove()
            for _, p in self.model.named_parameters():
                p.requires_grad_(previous[id(p)])
            self.model.train(was_training)
        return report
