"""results.json and pairs.jsonl: the files later stages and outside scripts read."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import IO, Any, Iterable, Iterator

RESULTS_FILE = "results.json"
PAIRS_FILE = "pairs.jsonl"
SCHEMA_VERSION = 1


def new_results(config: dict[str, Any], model: dict[str, Any],
                execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results skeleton: ``version, config, execution, model, tasks, spaces, analysis``.
    ``execution`` says how the units ran (executor, shard); it never changes the numbers."""
    return {"version": SCHEMA_VERSION, "config": config, "execution": execution or {}, "model": model,
            "tasks": {}, "spaces": {}, "analysis": {}}


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
