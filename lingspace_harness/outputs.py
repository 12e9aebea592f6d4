"""One run per output directory, where a run is what its units depend on.

A directory's identity is its data and model fingerprints, the run-level settings units depend
on (:data:`IDENTITY`) and the options of the plugins that store units (metrics with units of
their own, gradient strategies). A rerun that agrees on them is the same run: it reuses every
stored unit and computes only what is new (another metric, ``--split-half``), and another report,
analysis, permutation count, task spelling or output path (a moved directory) is accepted. Only a
run whose units would conflict is refused, as soon as each part is known: the settings before any
data or model loads (``refuse_other_run``), the data's fingerprints before the model loads (the
same), the model's fingerprint last (``claim_output``, which also makes the directory the run's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .capabilities import HasUnits
from .config import RunConfig
from .errors import UserError
from .options import Options, by_kind
from .plan import Plan
from .results import PAIRS_FILE, RESULTS_FILE, check_output_dir
from .units import UNITS_DIR

RUN_FILE = "run.json"
#: What a run owns in its output directory (``--overwrite`` removes these, nothing else).
RUN_FILES = (RUN_FILE, RESULTS_FILE, PAIRS_FILE)


#: The run-level settings that units depend on (besides the data's and model's fingerprints).
IDENTITY = (
    "model",
    "revision",
    "limit",
    "seed",
    "split_fractions",
    "dtype",
    "device",
    "device_map",
    "attn_implementation",
    "trust_remote_code",
    "batch_size",
    "prefix_token",
    "scoring",
    "include_embeddings",
)


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


def _setting(config: dict[str, Any], name: str) -> Any:
    default = RunConfig.__dataclass_fields__[name].default
    value = config.get(name, default)
    return list(value) if isinstance(value, tuple) else value


def _stores_units(plan: Plan, kind: str, name: str) -> bool:
    """Whether the plugin ``name`` of ``kind`` stores units its options shape."""
    if kind == "gradient_strategy":
        return True
    return kind == "metric" and name in plan.harness.metrics and isinstance(plan.harness.metrics.get(name), HasUnits)


def conflicts(old: dict[str, Any], plan: Plan, fingerprints: dict[str, Any]) -> list[str]:
    """What differs between the run recorded in ``old`` (a run.json) and ``plan`` in what units
    depend on, as far as ``fingerprints`` (those known so far) tell."""
    config, new_config = old.get("config") or {}, plan.config.to_json()
    changed = [k for k in IDENTITY if _setting(config, k) != _setting(new_config, k)]
    old_options = by_kind(config.get("options") or {}, plan.harness.optioned_kind)
    new_options = plan.options_record()
    for kind in sorted(set(old_options) & set(new_options)):
        for name in sorted(set(old_options[kind]) & set(new_options[kind])):
            if _stores_units(plan, kind, name):
                changed += differences(old_options[kind][name], new_options[kind][name], f"{name}.")
    recorded = old.get("fingerprints") or {}
    old_tasks, new_tasks = recorded.get("tasks", {}), fingerprints.get("tasks")
    odd = (
        [] if new_tasks is None else sorted(t for t in {*old_tasks, *new_tasks} if old_tasks.get(t) != new_tasks.get(t))
    )
    if odd:
        changed.append(f"the tasks or pairs of {', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''}")
    if fingerprints.get("model") and recorded.get("model") not in (None, fingerprints["model"]):
        changed.append("the model's weights or hub commit")
    return changed


def _owned(out: Path) -> list[str]:
    return [p for p in (*RUN_FILES, UNITS_DIR) if (out / p).exists()]


def _read_run(out: Path) -> dict[str, Any] | None:
    try:
        old = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def other_run(out: Path, plan: Plan, fingerprints: dict[str, Any]) -> str | None:
    """What ``out`` holds if its units conflict with this run's (see the module docstring); None
    if it holds no run, or this one as far as ``fingerprints`` (those known so far) tell."""
    if not _owned(out):
        return None
    old = _read_run(out)
    if old is None:
        return "files of a run this version cannot check"
    changed = conflicts(old, plan, fingerprints)
    return f"another run ({', '.join(changed[:6])} differ)" if changed else None


def _refusal(out: Path, reason: str) -> UserError:
    return UserError(f"{out} holds {reason}; choose another --output, or pass --overwrite to replace it")


def refuse_other_run(plan: Plan, fingerprints: dict[str, Any]) -> None:
    """Before the rest loads: refuse an output directory whose units conflict with this run's,
    as far as the settings and the ``fingerprints`` known so far tell."""
    out = Path(plan.config.output)
    check_output_dir(out)
    reason = other_run(out, plan, fingerprints)
    if reason is not None:
        raise _refusal(out, reason)


def recorded_options(out: Path, plan: Plan) -> Options:
    """The options run.json records for this directory's run from now on: this run's, and those
    of plugins the directory's earlier runs used (their stored units stay valid) that it does not."""
    old = _read_run(out) or {}
    merged = by_kind((old.get("config") or {}).get("options") or {}, plan.harness.optioned_kind)
    for kind, plugins in plan.options_record().items():
        merged.setdefault(kind, {}).update(plugins)
    return merged


def claim_output(plan: Plan, fingerprints: dict[str, Any], overwrite: bool) -> None:
    """Make ``plan.config.output`` this run's: resume or extend the same run, refuse a
    conflicting one in one line, or with ``overwrite`` remove its files first."""
    out = Path(plan.config.output)
    check_output_dir(out)
    reason = other_run(out, plan, fingerprints)
    if reason is None:
        return
    if not overwrite:
        raise _refusal(out, reason)
    for name in _owned(out):
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
