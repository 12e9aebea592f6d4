"""``cka``: centred kernel alignment of sentence representations, layer by layer.

- For each source task: CKA between the probe set's representations before and after
  FTGD-tuning on it (how much tuning changed each layer), and, as the task space, the CKA
  between two sources' representation *changes* (do they move representations alike?).
- With ``--cka-reference MODEL``: CKA between the run's model and another model or
  checkpoint on the same probe set.
Both linear CKA and its debiased form (unbiased HSIC; Song et al. 2012, Nguyen et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lingspace_harness import MetricResult, ModelAccess, RunContext, Space, UserError, hookimpl
from lingspace_harness.models import resolve_loader, split_revision
from lingspace_harness.scoring import prefix_token_id

#: What cka needs: each source task's tuned probe-set states (``transfer`` provides them).
TUNED_STATES = "tuned-states"


@runtime_checkable
class TunedStates(Protocol):
    """What the metric providing ``tuned-states`` offers: its tuned rows (computing missing ones),
    the probe set and its delimiters, and the probe-set states after tuning on each source."""

    def tuned_rows(self, ctx: RunContext) -> dict[str, dict[str, Any]]: ...

    def probe_sentences(self, ctx: RunContext) -> list[str]: ...

    def probe_delimiters(self, ctx: RunContext) -> list[str]: ...

    def tuned_states(self, ctx: RunContext, source: str) -> np.ndarray: ...


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred X, Y (rows: examples); NaN
    (undefined) when either is constant over the examples."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else float("nan")


def _unbiased_hsic(kx: np.ndarray, ly: np.ndarray) -> float:
    n = len(kx)
    kx, ly = kx.copy(), ly.copy()
    np.fill_diagonal(kx, 0)
    np.fill_diagonal(ly, 0)
    ones_kx, ones_ly = kx.sum(), ly.sum()
    cross = np.sum(kx * ly) + ones_kx * ones_ly / ((n - 1) * (n - 2)) - 2 / (n - 2) * (kx.sum(0) @ ly.sum(0))
    return float(cross / (n * (n - 3)))


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from the unbiased HSIC estimator with linear kernels. NaN (undefined) with fewer than
    4 examples (e.g. a probe set of 2 tasks at ``--limit 1``), or when an unbiased self-HSIC is
    not positive (e.g. a constant representation)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) < 4:
        return float("nan")
    kx, ly = x @ x.T, y @ y.T
    denom = np.sqrt(max(_unbiased_hsic(kx, kx), 0) * max(_unbiased_hsic(ly, ly), 0))
    return _unbiased_hsic(kx, ly) / denom if denom > 0 else float("nan")


def per_layer(a: np.ndarray, b: np.ndarray) -> dict[str, list[float]]:
    """Linear and debiased CKA for each layer of two ``[layers, n, hidden]`` stacks."""
    return {
        "linear": [linear_cka(a[i], b[i]) for i in range(len(a))],
        "debiased": [debiased_cka(a[i], b[i]) for i in range(len(a))],
    }


def change_spaces(tasks: list[str], changes: dict[str, np.ndarray], layers: int) -> dict[str, list[np.ndarray]]:
    """Per kind (linear, debiased) and layer, the CKA between the tasks' representation changes.
    The diagonal is 1, or NaN (undefined) for a change that is constant over the probe set."""
    fns = {"linear": linear_cka, "debiased": debiased_cka}
    n = len(tasks)
    spaces = {kind: [np.empty((n, n)) for _ in range(layers)] for kind in fns}
    for i, s in enumerate(tasks):
        for j in range(i, n):
            for layer in range(layers):
                for kind, fn in fns.items():
                    value = fn(changes[s][layer], changes[tasks[j]][layer])
                    if i == j:
                        value = 1.0 if np.isfinite(value) else np.nan
                    spaces[kind][layer][i, j] = spaces[kind][layer][j, i] = value
    return spaces


@dataclass(frozen=True)
class CKAOptions:
    cka_reference: str | None = None  # a model, as --model takes it (MODEL@REVISION for a checkpoint)

    def __post_init__(self) -> None:
        if self.cka_reference:  # a local path with a revision fails before anything loads
            split_revision(self.cka_reference, what="--cka-reference")


class CKA:
    name = "cka"
    description = "CKA of probe-set representations: before vs after FTGD per task, and between tasks' changes"
    needs = (TUNED_STATES,)
    Options = CKAOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument(
            "--cka-reference",
            metavar="MODEL",
            help="also compare with this model or checkpoint (MODEL@REVISION) on the same probe set",
        )

    def compute(self, ctx: RunContext) -> MetricResult:
        tasks = ctx.task_names
        provider = ctx.provider(TUNED_STATES)
        if not isinstance(provider, TunedStates):
            raise UserError(
                f"{provider.name!r} provides {TUNED_STATES!r} without tuned_rows(), probe_sentences(), "
                f"probe_delimiters() and tuned_states()"
            )
        provider.tuned_rows(ctx)  # computes any missing source
        sentences = provider.probe_sentences(ctx)
        delimiters = provider.probe_delimiters(ctx)
        before = ctx.access.hidden_states(sentences, delimiter=delimiters)
        changes = {s: np.asarray(provider.tuned_states(ctx, s)) - before for s in tasks}
        after = {s: per_layer(before, before + changes[s]) for s in tasks}
        spaces = change_spaces(tasks, changes, len(before))
        last = len(before) - 1
        constant = [t for i, t in enumerate(tasks) if np.isnan(spaces["linear"][last][i, i])]
        extra: dict[str, Any] = {
            "variant": "linear CKA of representation changes, last layer",
            "undefined": (
                f"tuning on {', '.join(constant)} changed the last layer's probe representations "
                "by a constant (or not at all)"
            )
            if constant
            else None,
            "probe_size": before.shape[1],
            "per_layer": {kind: {str(layer): m.tolist() for layer, m in enumerate(ms)} for kind, ms in spaces.items()},
            "before_after": after,
        }
        reference = ctx.options(self.name).cka_reference
        if reference:
            extra["reference"] = {"model": reference, **self.against(ctx, reference, sentences, delimiters, before)}
        return MetricResult(space=Space(tasks, spaces["linear"][last].tolist(), extra))

    def against(
        self, ctx: RunContext, reference: str, sentences: list[str], delimiters: list[str], states: np.ndarray
    ) -> dict[str, Any]:
        """Per-layer CKA with ``reference`` (and the hub commit it was loaded at, if any)."""
        name, revision = split_revision(reference, what="--cka-reference")
        loader, spec = resolve_loader(ctx.harness.model_loaders, name)
        options = replace(ctx.config.model_options(), revision=revision)
        other = loader.load(spec, options)
        access = ModelAccess(other.model, other.tokenizer, prefix_token_id(other.tokenizer), method=ctx.config.scoring)
        theirs = access.hidden_states(sentences, delimiter=delimiters)
        if len(theirs) != len(states):  # different depth: compare by relative position
            idx = np.round(np.linspace(0, len(theirs) - 1, len(states))).astype(int)
            theirs = theirs[idx]
        return {"commit": other.commit, **per_layer(states, theirs)}


@hookimpl
def lingspace_register_metrics(register):
    register(CKA())
