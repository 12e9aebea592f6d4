"""Minimal pairs and their validated reading from jsonl files or row iterables."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["pairs_from_rows", "read_jsonl", "read_pairs_jsonl"]

log = logging.getLogger("lingspace_harness")


@dataclass(frozen=True)
class MinimalPair:
    """One grammatical/ungrammatical sentence pair."""

    pair_id: str
    good: str
    bad: str


@dataclass
class PairScore:
    """A scored pair: the (summed) log-probabilities of its good and bad sentence, and how many
    tokens each sum is over (None where the model does not say, e.g. a model that only scores)."""

    task: str
    pair_id: str
    good: str
    bad: str
    logp_good: float
    logp_bad: float
    n_good: int | None = None
    n_bad: int | None = None

    @property
    def margin(self) -> float:
        return self.logp_good - self.logp_bad

    @property
    def token_margin(self) -> float:
        """Mean log-prob per token of the good sentence minus the bad one's (NaN without counts)."""
        if not self.n_good or not self.n_bad:
            return math.nan
        return self.logp_good / self.n_good - self.logp_bad / self.n_bad


def pairs_from_rows(
    rows: Iterable[tuple[int, Any]],
    where: str,
    *,
    good: str = "sentence_good",
    bad: str = "sentence_bad",
    pair_id: str | None = "pairID",
) -> list[MinimalPair]:
    """Validate ``(line_number, row)`` items into pairs.

    A row that is not an object, lacks a field or has an empty sentence raises
    :class:`DataError` naming ``where:line``. Rows whose two sentences are identical
    are skipped with one counted warning. No valid pair at all is an error.
    """
    pairs: list[MinimalPair] = []
    identical: list[int] = []
    problems: list[str] = []
    for line, row in rows:
        problem = _row_problem(row, good, bad, pair_id)
        if problem:
            problems.append(f"{where}:{line}: {problem}")
            continue
        g, b = row[good].strip(), row[bad].strip()
        if g == b:
            identical.append(line)
            continue
        pid = str(row[pair_id]) if pair_id and pair_id in row else str(line)
        pairs.append(MinimalPair(pid, g, b))
    if problems:
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    if identical:
        shown = ", ".join(map(str, identical[:10])) + (", ..." if len(identical) > 10 else "")
        log.warning(
            "%s: skipped %d pair(s) whose good and bad sentences are identical (line %s)", where, len(identical), shown
        )
    if not pairs:
        raise DataError(f"{where}: no valid minimal pairs")
    return pairs


def _row_problem(row: Any, good: str, bad: str, pair_id: str | None) -> str | None:
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for key in (good, bad):
        if key not in row:
            return f"missing field {key!r}"
        if not isinstance(row[key], str):
            return f"field {key!r} is not a string"
        if not row[key].strip():
            return f"field {key!r} is empty"
    return None


def read_jsonl(path: str | Path) -> Iterable[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad JSON raises DataError."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: not valid JSON: {exc.msg}: line {number} column {exc.colno}"
                ) from exc


def read_pairs_jsonl(path: str | Path, **fields: Any) -> list[MinimalPair]:
    """Read and validate a jsonl file of minimal pairs (see :func:`pairs_from_rows`)."""
    return pairs_from_rows(read_jsonl(path), str(path), **fields)
