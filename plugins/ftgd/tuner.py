"""FTGD: fine-tuning via gradient differentials, restricted to a sparse parameter mask.

Each step minimises the pairwise logistic loss mean softplus(-(log p(good) - log p(bad))) over
a batch of training pairs. Its gradient is each pair's gradient differential, weighted by
sigmoid(-margin): pairs the model already gets right by a wide margin stop pulling, so the
objective stays bounded (plain ascent on the differential can push log p(bad) to minus
infinity and wreck the model). Adam (no weight decay) updates the masked entries only, with
state for those entries alone (``SparseAdam``): the optimiser's cost is O(mask size), tensors
without a masked entry get no gradient at all, and a linear layer's weight gets its gradient at
the masked entries only (``masked_grads``), not whole. Every ``eval_every`` steps (and after
the last) the validation margin is measured; training stops after ``patience`` evaluations
without improvement, and the best state seen (possibly the untuned one) is kept.
``restore()`` writes the saved base values back, so the model is never reloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lingspace_harness import MinimalPair, ModelAccess
from lingspace_harness.gradients import layout_of

from .masked_grads import MaskedLinearGrads, linear_owners

#: The least precision of FTGD's optimiser state and master values (a half-precision model's too).
STATE_DTYPE = "float32"


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


def mean_margin(access: ModelAccess, pairs: Sequence[MinimalPair], delimiter: str = " ") -> float:
    return access.mean_margin(pairs, delimiter)


def pair_loss(access: ModelAccess, pairs: Sequence[MinimalPair], delimiter: str = " ") -> Any:
    """The FTGD objective on ``pairs``: mean softplus(-margin), differentiable; every sentence is
    scored after ``delimiter``."""
    import torch

    logps = access.logprobs([s for p in pairs for s in (p.good, p.bad)], delimiter)
    margins = torch.stack([logps[2 * j] - logps[2 * j + 1] for j in range(len(pairs))])
    return torch.nn.functional.softplus(-margins).mean()


def sorted_unique(mask: Any) -> np.ndarray:
    """Flat indices as the tuner orders them: sorted and unique, int64 (the masks of ``controls``
    are sorted already, and are not copied again)."""
    mask = np.asarray(mask, dtype=np.int64)
    return mask if mask.size < 2 or bool(np.all(mask[1:] > mask[:-1])) else np.unique(mask)


def _copy(tensor: Any) -> Any:
    return None if tensor is None else tensor.clone()


class SparseAdam:
    """Adam on chosen entries of several tensors, with torch.optim.Adam's formulas (betas
    (0.9, 0.999), eps 1e-8, bias correction, no weight decay) and state for those entries only.

    ``step()`` gathers the chosen gradient entries into one flat vector, updates it, and
    writes the new values back: O(number of entries), not O(tensor sizes).

    The state and the entries' master values are kept in at least float32 (``STATE_DTYPE``),
    whatever the tensors' dtype: a bfloat16 or float16 model's entries are written back as their
    float32 master values rounded to the tensors' dtype, so steps below the half-precision spacing
    accumulate instead of being lost. For float32 tensors the master values are the tensors'
    own values, and the updates are exactly those of a float32 Adam."""

    def __init__(
        self,
        tensors: Sequence[Any],
        indices: Sequence[Any],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        import torch

        self.tensors, self.indices = list(tensors), list(indices)
        self.flats = [t.detach().view(-1) for t in self.tensors]
        self.lr, self.betas, self.eps = lr, betas, eps
        dtype = torch.promote_types(self.tensors[0].dtype, getattr(torch, STATE_DTYPE))
        self.master = torch.cat([f[i] for f, i in zip(self.flats, self.indices)]).to(dtype)
        self.exp_avg = torch.zeros_like(self.master)
        self.exp_avg_sq = torch.zeros_like(self.exp_avg)
        self.steps = 0

    def zero_grad(self) -> None:
        for t in self.tensors:
            t.grad = None

    def reload(self) -> None:
        """Take the master values from the tensors again (after something else wrote them)."""
        import torch

        with torch.no_grad():
            self.master.copy_(torch.cat([f[i] for f, i in zip(self.flats, self.indices)]))

    def step(self, gathered: Sequence[Any] | None = None) -> None:
        """One update; ``gathered[k]``, where given (not None), is tensor k's gradient at its
        entries already, in place of ``.grad``."""
        import torch

        beta1, beta2 = self.betas
        gathered = gathered or [None] * len(self.tensors)
        with torch.no_grad():
            grad = torch.cat(
                [
                    g if g is not None else t.grad.reshape(-1)[i] if t.grad is not None else torch.zeros_like(f[i])
                    for g, t, f, i in zip(gathered, self.tensors, self.flats, self.indices)
                ]
            ).to(self.exp_avg)
            self.steps += 1
            self.exp_avg.lerp_(grad, 1 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            correction1, correction2 = 1 - beta1 ** float(self.steps), 1 - beta2 ** float(self.steps)
            denom = (self.exp_avg_sq.sqrt() / correction2**0.5).add_(self.eps)
            self.master.addcdiv_(self.exp_avg, denom, value=-self.lr / correction1)
            start = 0
            for f, i in zip(self.flats, self.indices):
                f.index_copy_(0, i, self.master[start : start + len(i)].to(f.dtype))
                start += len(i)


class MaskedTuner:
    """Tunes the masked entries of ``params`` (flat indices in their layout; None: all entries).
    ``tune`` scores every sentence after ``delimiter`` (the source task's, see ``Task.delimiter``).
    ``masked_weights`` (default): a masked linear weight gets its gradient at the masked entries
    only (``masked_grads``); False: autograd's dense gradient, the reference."""

    def __init__(
        self, model: Any, params: Sequence[tuple[str, Any]], mask: np.ndarray | None, masked_weights: bool = True
    ) -> None:
        import torch

        self.model = model
        self.params = [p for _, p in params]
        offsets = layout_of(params).offsets
        self.indices: list[Any] = []  # per param: flat indices (int64, sorted), or None for "every entry"
        if mask is not None:
            mask = sorted_unique(mask)
        for i, param in enumerate(self.params):
            if mask is None:
                self.indices.append(None)
            else:
                lo, hi = np.searchsorted(mask, [offsets[i], offsets[i + 1]])
                self.indices.append(torch.from_numpy(mask[lo:hi] - offsets[i]).to(param.device))
        self.trainable = [i for i, idx in enumerate(self.indices) if idx is None or idx.numel() > 0]
        owners = linear_owners(model) if mask is not None and masked_weights else {}
        self.hooked = {i: k for k, i in enumerate(i for i in self.trainable if id(self.params[i]) in owners)}
        self.masked_grads = MaskedLinearGrads(
            model, [(*owners[id(self.params[i])], self.indices[i]) for i in self.hooked]
        )
        self.saved = self._snapshot()
        self.tuned_master: Any = None  # the kept float32 master values of the last ``tune``, if any

    def _snapshot(self) -> list[Any]:
        """The current values of the tuned entries, one tensor per trainable parameter."""
        return [
            self.params[i].detach().clone()
            if self.indices[i] is None
            else self.params[i].detach().view(-1)[self.indices[i]]
            for i in self.trainable
        ]

    def _load(self, snapshot: list[Any]) -> None:
        import torch

        with torch.no_grad():
            for i, values in zip(self.trainable, snapshot):
                if self.indices[i] is None:
                    self.params[i].copy_(values)
                else:
                    self.params[i].view(-1).index_copy_(0, self.indices[i], values)

    def restore(self) -> None:
        """Write the base values back into the tuned entries."""
        self._load(self.saved)

    def delta(self) -> np.ndarray:
        """The tuned entries' current values less their base values, as float32, in the order of
        the sorted mask (every entry, parameter by parameter, without one): Δθ on the mask."""
        import torch

        base = torch.cat([b.float().reshape(-1) for b in self.saved])
        if self.tuned_master is not None:  # a half-precision model: its float32 master values, not their rounding
            return (self.tuned_master.float() - base).cpu().numpy()
        return (torch.cat([a.float().reshape(-1) for a in self._snapshot()]) - base).cpu().numpy()

    def optimizer(self, lr: float) -> Any:
        """Adam over the tuned entries: ``SparseAdam`` on the mask, torch.optim.Adam without one."""
        import torch

        tensors = [self.params[i] for i in self.trainable]
        if not tensors:
            raise ValueError("the mask selects no parameter entries")
        whole = [i for i in self.trainable if self.indices[i] is None]
        if whole and all(t.dtype == torch.promote_types(t.dtype, getattr(torch, STATE_DTYPE)) for t in tensors):
            return torch.optim.Adam(tensors, lr=lr, weight_decay=0.0)
        # a half-precision model's every entry: SparseAdam over all of them, for its float32 state
        indices = [
            torch.arange(self.params[i].numel(), device=self.params[i].device) if i in whole else self.indices[i]
            for i in self.trainable
        ]
        return SparseAdam(tensors, indices, lr)

    def _step(self, optimizer: Any, access: ModelAccess, batch: Sequence[MinimalPair], delimiter: str) -> None:
        """One optimiser step on ``batch``'s pair loss."""
        optimizer.zero_grad()
        self.masked_grads.clear()
        with self.masked_grads.attached():
            pair_loss(access, batch, delimiter).backward()
        if self.masked_grads.unreached:
            raise RuntimeError(
                "no gradient reached the masked linear layers "
                f"{sorted(self.masked_grads.unreached)}: their inputs did not require one"
            )
        if not self.hooked:
            optimizer.step()
            return
        grads = self.masked_grads.grads
        optimizer.step([grads[self.hooked[i]] if i in self.hooked else None for i in self.trainable])

    def tune(
        self,
        access: ModelAccess,
        train: Sequence[MinimalPair],
        validation: Sequence[MinimalPair],
        settings: FTGDSettings,
        progress: Callable[[int], None] | None = None,
        delimiter: str = " ",
    ) -> TuneReport:
        if not validation:  # nothing to stop on: run the fixed number of steps
            settings = FTGDSettings(**{**settings.__dict__, "early_stopping": False})
        previous = {id(p): p.requires_grad for _, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
        for i in self.trainable:
            self.params[i].requires_grad_(i not in self.hooked)  # a hooked weight's entries come from its hooks
        optimizer = self.optimizer(settings.lr)
        rng = np.random.default_rng(settings.seed)
        order: list[int] = []
        report = TuneReport(steps=0, best_step=0)
        best = mean_margin(access, validation, delimiter) if settings.early_stopping else None
        report.validation_margins.append(best if best is not None else float("nan"))
        best_state = self._snapshot() if settings.early_stopping else None
        master = getattr(optimizer, "master", None)  # SparseAdam's float32 values, in the snapshots' order
        best_master = _copy(master)
        stale = 0
        was_training = self.model.training
        self.model.eval()
        try:
            for step in range(1, settings.steps + 1):
                if len(order) < settings.batch:
                    order += rng.permutation(len(train)).tolist()
                batch = [train[j] for j in order[: settings.batch]]
                del order[: settings.batch]
                self._step(optimizer, access, batch, delimiter)
                report.steps = step
                if progress:
                    progress(1)
                last = step == settings.steps
                if best is not None and (step % settings.eval_every == 0 or last):  # early stopping
                    margin = mean_margin(access, validation, delimiter)
                    report.validation_margins.append(margin)
                    if margin > best:
                        best, best_state, report.best_step, stale = margin, self._snapshot(), step, 0
                        best_master = _copy(master)
                    else:
                        stale += 1
                        if stale >= settings.patience:
                            break
            if best_state is not None:  # early stopping
                self._load(best_state)
            else:
                report.best_step = report.steps
            self.tuned_master = _copy(master) if best_state is None else best_master
        finally:
            optimizer.zero_grad()
            for _, p in self.model.named_parameters():
                p.requires_grad_(previous[id(p)])
            self.model.train(was_training)
        return report
