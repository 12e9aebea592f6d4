"""Controls for FTGD: which entries are tuned, and the general text perplexity is measured on.

Mask kinds (``--ftgd-mask``): ``topk`` the source's mask from the ``mask`` provider (the
top-k |summed gradient differential|); ``random`` a seeded uniform mask of the same size
(seeded by the run seed and the source's name); ``magnitude`` the same number of entries
with the largest |θ| over the gradient parameters (the same for every source); ``full``
every entry (no mask).
"""

from __future__ import annotations

import argparse
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import RunContext, UserError

MASK_KINDS = ("topk", "random", "magnitude", "full")
#: What the perplexity is computed on without ``--perplexity-text``.
BLIMP_GOOD_TEST = "blimp-good-test"
#: General English text shipped with the package (50 passages, one a line), for ``--perplexity-text``.
GENERAL_TEXT = Path(__file__).with_name("general_text.txt")


def random_mask(size: int, k: int, seed: int, source: str) -> np.ndarray:
    """``k`` distinct sorted indices in [0, size), uniform, seeded by ``seed`` and ``source``."""
    rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
    return np.sort(rng.choice(size, size=k, replace=False)).astype(np.int64)


def magnitude_mask(params: list[tuple[str, Any]], k: int) -> np.ndarray:
    """Sorted flat indices (in the parameters' layout order) of the ``k`` largest |θ|."""
    flat = np.concatenate([p.detach().float().abs().cpu().numpy().ravel() for _, p in params])
    return np.sort(np.argpartition(flat, flat.size - k)[flat.size - k :]).astype(np.int64)


def source_mask(ctx: RunContext, kind: str, source: str, seed: int) -> np.ndarray | None:
    """The entries to tune on ``source`` for a mask ``kind`` (None: every entry). ``random``
    and ``magnitude`` have as many entries as the source's mask from the ``mask`` provider."""
    if kind == "full":
        return None
    mask = np.asarray(ctx.gradient(ctx.provider("mask").name, source))
    if kind == "topk":
        return mask
    if kind == "random":
        return random_mask(ctx.gradient_layout.size, int(mask.size), seed, source)
    if kind == "magnitude":
        return magnitude_mask(ctx.gradient_params, int(mask.size))
    raise UserError(f"--ftgd-mask must be one of {', '.join(MASK_KINDS)}, got {kind!r}")


@dataclass(frozen=True)
class PerplexityText:
    """A plain-text file, one passage per non-empty line, for the general-text perplexity."""

    name: str
    sha256: str
    lines: tuple[str, ...]

    @classmethod
    def read(cls, path: str) -> PerplexityText:
        file = Path(path)
        if not file.is_file():
            raise UserError(f"--perplexity-text {path}: no such file")
        data = file.read_bytes()
        try:
            lines = tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())
        except UnicodeDecodeError as exc:
            raise UserError(f"--perplexity-text {path}: not UTF-8 text") from exc
        if not lines:
            raise UserError(f"--perplexity-text {path}: the file has no text")
        return cls(file.name, hashlib.sha256(data).hexdigest(), lines)

    @property
    def label(self) -> str:
        return f"file:{self.name}"


def perplexity_text_argument(path: str) -> str:
    """argparse ``type`` of ``--perplexity-text``: a bad file is a one-line error before any work."""
    try:
        PerplexityText.read(path)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--perplexity-text ")) from exc
    return path


def positive_int(value: str) -> int:
    """argparse ``type`` for counts that must be at least 1."""
    try:
        number = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from exc
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
