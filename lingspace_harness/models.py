"""Model loaders: the protocol plugins implement, and how a ``--model`` string picks one."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ModelError, UserError
from .registry import Registry

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["resolve_loader", "split_revision"]


@dataclass(frozen=True)
class ModelOptions:
    """What the user asked for: ``--revision``, ``--dtype``, ``--device``, ``--batch-size`` (a
    number or ``"auto"``), the cache, and what a loader passes on to ``from_pretrained``:
    ``--device-map`` (the model is then placed by it, not moved to ``device``),
    ``--attn-implementation`` and ``--trust-remote-code``. A loader refuses those that do not
    apply to it (a ``ModelError``), rather than ignoring them."""

    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    cache_dir: Path | None = None
    batch_size: int | str | None = None
    device_map: str | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False


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
    commit: str | None = None  # the hub commit ``revision`` resolved to (part of the model's fingerprint)

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
            "commit": self.commit,
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


#: A ``NAME:`` loader prefix (two characters at least, so that ``C:`` stays a drive).
_PREFIX = re.compile(r"^[A-Za-z_][\w-]+:")


def _is_path(spec: str) -> bool:
    """Whether ``spec``, or what follows its ``NAME:`` loader prefix, is an existing file or directory."""
    bare = _PREFIX.sub("", spec, count=1)
    return any(Path(s).expanduser().exists() for s in {spec, bare} if s)


def split_revision(model: str, revision: str | None = None, what: str = "--model") -> tuple[str, str | None]:
    """``MODEL@REVISION`` as ``(MODEL, REVISION)``, wherever a model is named (``what``, for errors).
    An existing path is a model as it stands, ``@`` and all. ``revision`` (``--revision``) may
    repeat the one after ``@``, not differ from it. A local path has no revisions: one is refused
    (a loader would read the directory or file as it is, whatever the revision said)."""
    name, given = model, revision
    if "@" in model and not _is_path(model):
        name, _, given = model.rpartition("@")
        if not name or not given:
            raise UserError(f"{what} {model}: write MODEL@REVISION, e.g. EleutherAI/pythia-70m@step1000")
        if revision and revision != given:
            raise UserError(f"{what} {model} names revision {given!r}, --revision {revision!r}; give one of them")
    if given and _is_path(name):
        raise UserError(
            f"{what} {name} is a local path, which has no revisions (revision {given!r} would be ignored); "
            "leave the revision out, or name the checkpoint's own directory or its hub id"
        )
    return name, given
