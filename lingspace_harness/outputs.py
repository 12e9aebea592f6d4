"""One run per output directory: a rerun of the same run resumes it, anything else is refused.

A run is compared with the one in its output directory as soon as each part is known: its
config before any data or model loads (``refuse_other_run``), its data's fingerprints before
the model loads (the same), and the model's fingerprint last (``claim_output``, which also
makes the directory the run's)."""

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
    tasks = [
        k.split(".", 1)[1] for k in differences(old.get("fingerprints", {}), fingerprints) if k.startswith("tasks.")
    ]
    if tasks and not [k for k in changed if k.startswith("tasks")]:
        changed.append(f"the pairs of {', '.join(tasks[:3])}{' ...' if len(tasks) > 3 else ''}")
    if old.get("fingerprints", {}).get("model") not in (None, fingerprints.get("model")):
        changed.append("the model's weights or hub commit")
    return ", ".join(changed[:6]) or "its run file"


def _owned(out: Path) -> list[str]:
    return [p for p in (*RUN_FILES, UNITS_DIR) if (out / p).exists()]


def other_run(out: Path, config: dict[str, Any], fingerprints: dict[str, Any]) -> str | None:
    """What ``out`` holds if it is another run than this one (``config`` as JSON, and those of
    its ``fingerprints`` known so far); None if it holds none, or this one as far as is known."""
    if not _owned(out):
        return None
    run_file = out / RUN_FILE
    if not run_file.is_file():
        return "files of a run this version cannot check"
    try:
        old = json.loads(run_file.read_text(encoding="utf-8"))
    except ValueError:
        old = {}
    old = {
        "config": old.get("config") or {},
        "fingerprints": {k: v for k, v in (old.get("fingerprints") or {}).items() if k in fingerprints},
    }
    if old["config"] == config and old["fingerprints"] == fingerprints:
        return None
    return f"another run ({describe(old, config, fingerprints)} differ)"


def _refusal(out: Path, reason: str) -> UserError:
    return UserError(f"{out} holds {reason}; choose another --output, or pass --overwrite to replace it")


def refuse_other_run(config: Any, fingerprints: dict[str, Any], options: dict[str, Any]) -> None:
    """Before the rest loads: refuse an output directory that holds another run, as far as the
    config and the ``fingerprints`` known so far tell. ``options`` stands for the config's
    options until the run records its own: this run's options of each plugin the old run
    recorded (a plugin the old run did not record differs anyway when it is recorded)."""
    out = Path(config.output)
    check_output_dir(out)
    reason = other_run(out, json.loads(json.dumps({**config.to_json(), "options": options})), fingerprints)
    if reason is not None:
        raise _refusal(out, reason)


def recorded_options(out: Path) -> list[str]:
    """The plugins whose options the run in ``out`` recorded (none if there is no readable run)."""
    try:
        old = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
        return sorted(old["config"]["options"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def claim_output(config: Any, fingerprints: dict[str, Any], overwrite: bool) -> None:
    """Make ``config.output`` this run's: resume the same run, refuse another one in one line,
    or with ``overwrite`` remove the other run's files first."""
    out = Path(config.output)
    check_output_dir(out)
    reason = other_run(out, json.loads(json.dumps(config.to_json())), fingerprints)
    if reason is None:
        return
    if not overwrite:
        raise _refusal(out, reason)
    for name in _owned(out):
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
