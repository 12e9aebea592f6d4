"""Run the tests from a checkout too: use ``../src`` when the package is not installed.

After ``pip install -e ".[test]"`` (the usual way to work on a plugin) this does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("lingspace_example_plugin") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
