"""results.json and pairs.jsonl: the files later stages and outside scripts read."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import IO, Any, Iterable, Iterator

from .errors import UserError

RESULTS_FILE = "results.json"
PAIRS_FILE = "pairs.jsonl"
SCHEMA_VERSION = 1


def new_results(config: dict[str, Any], model: dict[str, Any],
                execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results skeleton: ``version, config, execution, model, tasks, spaces, analysis``.
    ``execution`` says how the units ran (executor, shard); it never changes the numbers."""
    return {"version": SCHEMA_VERSION, "config": config, "execution": execution or {}, "model": model,
            "tasks": {}, "spaces": {}, "analysis": {}}


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
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
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


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    path = out_dir / RESULTS_FILE
    write_atomic(path, [json.dumps(results, indent=2, allow_nan=False), "\n"])
    return path


def write_pairs(out_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path = out_dir / PAIRS_FILE
    write_atomic(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def read_results(out_dir: Path) -> dict[str, Any]:
    with (out_dir / RESULTS_FILE).open(encoding="utf-8") as handle:
        return json.load(handle)
