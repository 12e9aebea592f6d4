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

from .errors import UserError, error_reason

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["atomic_open", "read_results", "write_atomic", "write_results"]

RESULTS_FILE = "results.json"
PAIRS_FILE = "pairs.jsonl"
SCHEMA_VERSION = 1
#: What every run's results.json holds (see ``new_results``), and each one's JSON type: a
#: reader refuses a file without them (``check_results``).
RUN_KEYS: dict[str, type] = {"version": int, "config": dict, "tasks": dict, "spaces": dict}
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}


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


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return _JSON_TYPES.get(type(value), type(value).__name__)


def check_results(results: Any, path: Path) -> dict[str, Any]:
    """``results`` (read from ``path``) if it is a run's results.json: an object with each of
    ``RUN_KEYS`` of its type. Anything else is a one-line :class:`UserError` naming the file."""
    if not isinstance(results, dict):
        raise UserError(f"{path} is not a run's results: it holds {_json_type(results)}, not an object")
    problems = [f"{key} is {_json_type(results[key])}" for key in RUN_KEYS if key in results and not _is(results, key)]
    missing = [key for key in RUN_KEYS if key not in results]
    if missing:
        problems.insert(0, f"it has no {', '.join(missing)}")
    if problems:
        raise UserError(f"{path} is not a run's results ({'; '.join(problems)}); give the --output directory of a run")
    return results


def _is(results: dict[str, Any], key: str) -> bool:
    """Whether ``results[key]`` has its ``RUN_KEYS`` type (a JSON true or false is no number)."""
    value = results[key]
    return isinstance(value, RUN_KEYS[key]) and not isinstance(value, bool)


def read_results(out_dir: Path) -> dict[str, Any]:
    """A run's results.json (checked by :func:`check_results`), with the null (undefined) cells
    of each space's ``matrix`` and split halves back as NaN. A missing or unreadable file, or
    one that is not a run's, is a one-line :class:`UserError`."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"no {RESULTS_FILE} in {out_dir} (is it a run's --output directory?)")
    try:
        with path.open(encoding="utf-8") as handle:
            results = check_results(json.load(handle), path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {error_reason(exc)}") from exc
    for space in results["spaces"].values():
        if not isinstance(space, dict):
            continue
        space["matrix"] = _nan_for_null(space.get("matrix"))
        halves = space.get("split_half")
        if isinstance(halves, dict):
            for half in ("a", "b"):
                if half in halves:
                    halves[half] = _nan_for_null(halves[half])
    return results
