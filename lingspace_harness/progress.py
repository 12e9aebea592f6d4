"""Progress that shows everywhere: tqdm bars on a terminal; elsewhere (nohup, SLURM, CI,
``| tee``) one line per bar at most every ``LINGSPACE_PROGRESS_INTERVAL`` seconds (default 30)
with done/total, rate and ETA, and one line when the bar ends.

``LINGSPACE_QUIET=1`` (the CLI's ``--quiet``) or ``LINGSPACE_NO_PROGRESS=1`` (tests): nothing.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .errors import UserError

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["progress_bar"]

#: Seconds between two progress lines of one bar when stderr is not a terminal.
DEFAULT_INTERVAL = 30.0


def progress_silenced() -> bool:
    """True with ``LINGSPACE_QUIET=1`` or ``LINGSPACE_NO_PROGRESS=1``."""
    return "1" in (os.environ.get("LINGSPACE_QUIET"), os.environ.get("LINGSPACE_NO_PROGRESS"))


def progress_interval() -> float:
    """``LINGSPACE_PROGRESS_INTERVAL`` in seconds, else 30."""
    raw = os.environ.get("LINGSPACE_PROGRESS_INTERVAL")
    if raw is None or raw.strip() == "":
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UserError(f"LINGSPACE_PROGRESS_INTERVAL={raw!r}: expected a number of seconds >= 0")
    return value


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class LineProgress:
    """A tqdm-like bar (``update``, ``set_postfix_str``, ``close``, a context manager) that
    writes plain lines: at most one per ``interval`` of ``clock`` time, and one at the end.

    A line is due on ``update`` and, with the real clock, also between updates (a background
    timer), so a slow unit still shows that the run is alive.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.interval, self.clock = interval, clock
        self.stream = stream if stream is not None else sys.stderr
        self.n, self.postfix = 0, ""
        self.start = self.last = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if clock is time.monotonic and interval > 0:
            self._timer = threading.Thread(target=self._tick, name=f"progress {desc}", daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._maybe_line()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_line()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def _maybe_line(self) -> None:
        with self._lock:
            now = self.clock()
            if self._stop.is_set() or now - self.last < self.interval:
                return
            self.last = now
            elapsed = now - self.start
            rate = self.n / elapsed if elapsed > 0 else math.nan
            eta = (self.total - self.n) / rate if rate > 0 else math.nan
            more = f" [{self.postfix}]" if self.postfix else ""
            self._write(
                f"{self.desc}: {self.n}/{self.total} {self.unit} ({_rate(rate, self.unit)}, "
                f"{_duration(elapsed)} elapsed, ETA {_duration(eta)}){more}"
            )

    def close(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            elapsed = self.clock() - self.start
            rate = self.n / elapsed if elapsed > 0 else math.nan
            self._write(
                f"{self.desc}: done, {self.n}/{self.total} {self.unit} in {_duration(elapsed)} "
                f"({_rate(rate, self.unit)})"
            )

    def _write(self, line: str) -> None:
        try:
            print(f"progress: {line}", file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr must not stop the run
            pass

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _rate(rate: float, unit: str) -> str:
    if not math.isfinite(rate):
        return f"? {unit}/s"
    return f"{rate:.3g} {unit}/s" if rate >= 0.1 else f"{1 / rate:.3g} s/{unit}" if rate > 0 else f"0 {unit}/s"


def progress_bar(
    total: int, desc: str, unit: str = "it", *, clock: Callable[[], float] | None = None, interval: float | None = None
) -> Any:
    """A progress bar on stderr: tqdm on a terminal, else a :class:`LineProgress`; silent with
    ``LINGSPACE_QUIET=1`` or ``LINGSPACE_NO_PROGRESS=1``. ``clock``/``interval`` are for tests."""
    from tqdm.auto import tqdm

    if progress_silenced():
        return tqdm(total=total, desc=desc, unit=unit, disable=True)
    if sys.stderr.isatty() and clock is None and interval is None:
        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)
    return LineProgress(
        total, desc, unit, interval=progress_interval() if interval is None else interval, clock=clock or time.monotonic
    )
