"""The order of a series of runs (as given, by checkpoint step, by parameter count), and the
refusal of two runs of one model, which are no series."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lingspace_harness import UserError

ORDERS = ("given", "steps", "params")
STEP = re.compile(r"step(\d+)")


def run_order(runs: list[dict[str, Any]], by: str) -> list[int]:
    """Indices of ``runs`` in order: as given, by the revision's ``step<N>``, or by ``model.n_params``."""
    if by not in ORDERS:
        raise UserError(f"compare: --order-by must be one of {', '.join(ORDERS)}, not {by!r}")
    if by == "given":
        return list(range(len(runs)))
    keys = []
    for i, r in enumerate(runs, start=1):
        if by == "steps":
            revision = str((r.get("config") or {}).get("revision") or "")
            match = STEP.search(revision)
            if not match:
                raise UserError(
                    f"compare --order-by steps: run {i} has no step<N> in its revision ({revision or 'none'})"
                )
            keys.append(int(match.group(1)))
        else:
            n = (r.get("model") or {}).get("n_params")
            if not isinstance(n, int) or isinstance(n, bool):
                raise UserError(f"compare --order-by params: run {i} has no model.n_params in its results.json")
            keys.append(n)
    return sorted(range(len(runs)), key=keys.__getitem__)


def refuse_one_model(runs: list[dict[str, Any]], dirs: list[Path]) -> None:
    """Refuse two runs of the same model (``fingerprints.model``): a series of runs stands for
    models (checkpoints, sizes), and one model under two names (e.g. a local directory run with
    two ``--revision`` labels) is no trajectory."""
    seen: dict[str, Path] = {}
    for run, directory in zip(runs, dirs):
        fingerprint = (run.get("fingerprints") or {}).get("model")
        if fingerprint in seen:
            raise UserError(
                f"compare: {seen[fingerprint]} and {directory} hold runs of the same model ({fingerprint}), "
                "so they are no trajectory; pass --allow-same-model to compare them anyway (e.g. other seeds)"
            )
        if fingerprint:
            seen[fingerprint] = directory
