"""Progress bars that stay quiet when stderr is not a terminal."""
from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(total: int, desc: str, unit: str = "it") -> Any:
    """A tqdm bar on stderr, disabled off a TTY or with ``LINGSPACE_NO_PROGRESS=1``."""
    from tqdm.auto import tqdm

    off = not sys.stderr.isatty() or os.environ.get("LINGSPACE_NO_PROGRESS") == "1"
    return tqdm(total=total, desc=desc, unit=unit, disable=off, dynamic_ncols=True, leave=False)
