"""argparse types shared by the sub-commands. Each rejects a bad value with an English
:class:`argparse.ArgumentTypeError`, which argparse prints as ``argument --NAME: MESSAGE``."""

from __future__ import annotations

import argparse

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["comma_list", "positive_int"]


def comma_list(value: str) -> list[str]:
    """An argparse type: ``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [v.strip() for v in value.split(",") if v.strip()]


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def split_fractions(value: str) -> tuple[float, float, float]:
    """An argparse type: ``TRAIN,VAL,TEST``, three non-negative numbers that sum to 1."""
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-9:
        raise argparse.ArgumentTypeError(
            f"expected three non-negative numbers that sum to 1, e.g. 0.4,0.1,0.5, got {value!r}"
        )
    return parts


def shard(value: str) -> tuple[int, int]:
    """An argparse type: ``I/N``, slice I (counting from 0) of N."""
    i, sep, n = value.partition("/")
    try:
        part = (int(i), int(n))
    except ValueError:
        part = (-1, 0)
    if not sep or part[1] < 1 or not 0 <= part[0] < part[1]:
        raise argparse.ArgumentTypeError(
            f"expected I/N with 0 <= I < N, e.g. 0/3 (SLURM: $SLURM_ARRAY_TASK_ID/N), got {value!r}"
        )
    return part
