"""One run per output directory: a rerun of the same run resumes it, anything else is refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .errors import UserError
from .results import PAIRS_FILE, RESULTS_FILE, check_output_dir
from .units import UNITS_DIR

RUN_FILE = "run.json"
#: What a run owns in its output directory (``--overwrite`` removes these, nothing else).
RUN_FILES = (RUN_FILE, RESULTS_FILE, PAIRS_FILE)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable keys whose values differ between two JSON dicts (nested with dots)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def describe(old: dict[str, Any], config: dict[str, Any], fingerprints: dict[str, Any]) -> str:
    changed = [k for k in differences(old.get("config", {}), config) if k != "output"]
    tasks = [k.split(".", 1)[1] for k in differences(old.get("fingerprints", {}), fingerprints)
             if k.startswith("tasks.")]
    if tasks and not [k for k in changed if k.startswith("tasks")]:
        changed.append(f"the pairs of {', '.join(tasks[:3])}{' ...' if len(tasks) > 3 else ''}")
    if old.get("fingerprints", {}).get("model") not in (None, fingerprints.get("model")):
        changed.append("the model's weights")
    return ", ".join(changed[:6]) or "its run file"


def claim_output(config: Any, fingerprints: dict[str, Any], overwrite: bool) -> None:
    """Make ``config.output`` this run's: resume the same run, refuse another one in one line,
    or with ``overwrite`` remove the other run's files first."""
    out = Path(config.output)
    check_output_dir(out)
    run_file = out / RUN_FILE
    owned = [p for p in (*RUN_FILES, UNITS_DIR) if (out / p).exists()]
    if not owned:
        return
    if run_file.is_file():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        same = old.get("config") == json.loads(json.dumps(config.to_json())) and \
            old.get("fingerprints") == fingerprints
        if same:
            return
        reason = f"another run ({describe(old, config.to_json(), fingerprints)} differ)"
    else:
        reason = "files of a run this version cannot check"
    if not overwrite:
        raise UserError(f"{out} holds {reason}; choose another --output, or pass --overwrite to replace it")
    for name in owned:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
