"""Model loaders: the protocol plugins implement, and how a ``--model`` string picks one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ModelError
from .registry import Registry

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["resolve_loader"]


@dataclass(frozen=True)
class ModelOptions:
    """What the user asked for: ``--revision``, ``--dtype``, ``--device``, ``--batch-size``, and the cache."""

    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    cache_dir: Path | None = None
    batch_size: int | None = None


@dataclass
class LoadedModel:
    """A causal LM ready for scoring and gradients; or, with ``scorer`` set (and ``model`` None),
    one that only scores: ``scorer(sentences)`` returns each sentence's log-probability under
    lm-eval's empty-context convention (each after a space), and metrics that need a torch model
    refuse it. A scorer that also takes ``delimiter=`` (one string per sentence) can score tasks
    whose sentences follow another delimiter (``Task.delimiter``)."""

    model: Any  # a transformers PreTrainedModel (torch.nn.Module), or None with a scorer
    tokenizer: Any  # a transformers tokenizer
    name: str
    revision: str | None
    dtype: str
    device: str
    loader: str
    scorer: Callable[..., Sequence[float]] | None = None  # (sentences[, delimiter=...])

    @property
    def n_params(self) -> int | None:
        if self.model is None:
            return None
        return sum(p.numel() for p in self.model.parameters())

    def record(self) -> dict[str, Any]:
        """The ``model`` block of results.json."""
        return {
            "name": self.name,
            "revision": self.revision,
            "n_params": self.n_params,
            "dtype": self.dtype,
            "device": self.device,
            "loader": self.loader,
        }


@runtime_checkable
class ModelLoader(Protocol):
    """Loads models named by a ``--model`` string.

    ``claims(spec)`` says whether a spec without a ``NAME:`` prefix is this loader's.
    ``load`` raises :class:`lingspace_harness.ModelError` with a clear message on failure.
    A loader whose models only score (``LoadedModel.scorer``) sets ``scores_only = True``, so
    that a run needing gradients fails before anything loads.
    """

    name: str
    description: str

    def claims(self, spec: str) -> bool: ...

    def load(self, spec: str, options: ModelOptions) -> LoadedModel: ...


def resolve_loader(loaders: Registry, spec: str) -> tuple[ModelLoader, str]:
    """Pick the loader for ``spec``: an explicit ``NAME:`` prefix, else the one that claims it."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in loaders:
        return loaders.get(prefix), rest
    claimants = [loader for loader in loaders if loader.claims(spec)]
    if not claimants:
        raise ModelError(f"no model loader accepts {spec!r}; known loaders: {', '.join(loaders.names()) or 'none'}")
    if len(claimants) > 1:
        names = ", ".join(f"{c.name}:{spec}" for c in claimants)
        raise ModelError(f"several model loaders accept {spec!r}; choose one: {names}")
    return claimants[0], spec
