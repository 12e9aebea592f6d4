"""results.json and pairs.jsonl: the files later stages and outside scripts read."""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import UserError

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["atomic_open", "read_results", "write_atomic", "write_results"]

RESULTS_FILE = "results.json"
PAIRS_FILE = "pairs.jsonl"
SCHEMA_VERSION = 1


def new_results(
    config: dict[str, Any], model: dict[str, Any], execution: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The results skeleton: ``version, config, execution, model, tasks, spaces, analysis``.
    ``execution`` says how the units ran (executor, shard); it never changes the numbers."""
    return {
        "version": SCHEMA_VERSION,
        "config": config,
        "execution": execution or {},
        "model": model,
        "tasks": {},
        "spaces": {},
        "analysis": {},
    }


def check_output_dir(path: Path) -> None:
    """Raise a one-line :class:`UserError` unless ``path`` can be (or become) an output directory:
    it, or the nearest of its parents that exists, must be a directory we may write to.
    Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--output {path} cannot be created: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY else "permission denied"
        where = "" if existing == path else f" (in {existing})"
        raise UserError(f"cannot write to {path}: {reason}{where}")


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an
    error, flush it to disk and rename it into place, else remove it. Readers therefore see
    the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is None and "free space" in str(exc):  # numpy's tofile
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, lines: Iterable[str] | bytes) -> None:
    """Write text lines (or bytes) to ``path`` atomically (see ``atomic_open``)."""
    binary = isinstance(lines, bytes)
    with atomic_open(path, "wb" if binary else "w") as handle:
        if binary:
            handle.write(lines)
        else:
            for line in lines:
                handle.write(line)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite number (undefined) as None and numpy arrays and
    numbers as lists and Python numbers, so that it can go into results.json."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    """Write results.json; undefined (NaN) numbers become null (see :func:`json_safe`)."""
    path = out_dir / RESULTS_FILE
    write_atomic(path, [json.dumps(json_safe(results), indent=2, allow_nan=False), "\n"])
    return path


def write_pairs(out_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path = out_dir / PAIRS_FILE
    write_atomic(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def _nan_for_null(matrix: Any) -> Any:
    if not isinstance(matrix, list):
        return matrix
    return [[math.nan if v is None else v for v in row] if isinstance(row, list) else row for row in matrix]


def read_results(out_dir: Path) -> dict[str, Any]:
    """results.json, with the null (undefined) cells of each space's ``matrix`` and split
    halves back as NaN."""
    with (out_dir / RESULTS_FILE).open(encoding="utf-8") as handle:
        results = json.load(handle)
    for space in (results.get("spaces") or {}).values() if isinstance(results, dict) else ():
        if not isinstance(space, dict):
            continue
        space["matrix"] = _nan_for_null(space.get("matrix"))
        halves = space.get("split_half")
        if isinstance(halves, dict):
            for half in ("a", "b"):
                if half in halves:
                    halves[half] = _nan_for_null(halves[half])
    return results
