"""``run --config FILE``: a run's settings from a file with the keys run.json records, so a
finished run reproduces from its own record (``run --config DIR/run.json``).

FILE is JSON or YAML: a run.json or results.json (their ``config`` and ``execution``), or the
``config`` object alone. Its values become the defaults of ``run``'s options, so an option given
on the command line wins. A shard (``execution.shard``) is not taken from the file: it names one
job of several."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import UserError
from .options import PREFIX, by_kind

__all__ = ["run_defaults", "settings_defaults"]

#: Keys a run records that are not settings of ``run``.
_RECORDS = ("executor_options", "shard")


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``config`` and ``execution`` objects in ``path`` (see the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if Path(path).suffix in (".yaml", ".yml"):
            import yaml

            body = yaml.safe_load(text)
        else:
            body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"--config {path}: cannot read it ({exc})") from exc
    except Exception as exc:  # yaml's errors are not ValueErrors
        raise UserError(f"--config {path}: not JSON or YAML ({type(exc).__name__}: {exc})") from exc
    if not isinstance(body, dict):
        raise UserError(f"--config {path}: expected an object of run settings, got {type(body).__name__}")
    config = body.get("config", body)
    execution = body.get("execution") or {}
    if not isinstance(config, dict) or not isinstance(execution, dict):
        raise UserError(f"--config {path}: 'config' and 'execution' must be objects")
    return config, execution


def run_defaults(path: Path, kind_of_name: Callable[[str], str | None]) -> dict[str, Any]:
    """``run``'s option destinations -> the values the file at ``path`` gives them
    (``settings_defaults``)."""
    config, execution = read_config_file(path)
    return settings_defaults(config, execution, kind_of_name, f"--config {path}")


def settings_defaults(
    config: dict[str, Any], execution: dict[str, Any], kind_of_name: Callable[[str], str | None], where: str
) -> dict[str, Any]:
    """``run``'s option destinations -> the values run.json's ``config`` and ``execution``
    objects give them. ``kind_of_name(name)`` files the options of a record from before options
    were kept by kind (``options.by_kind``); ``where`` names the source in errors."""
    fields = RunConfig.__dataclass_fields__
    unknown = sorted(k for k in config if k not in fields or k in _RECORDS)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; it takes the keys of run.json's config")
    try:
        parsed = RunConfig.from_json({"output": "out", **config, "model": config.get("model", ""), "tasks": []})
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}") from exc
    out: dict[str, Any] = {}
    for key in config:
        if key != "options":
            out[key] = getattr(parsed, key)  # run.json's keys are run's option destinations
    if "tasks" in config:
        tasks = config["tasks"]
        out["tasks"] = [tasks] if isinstance(tasks, str) else list(tasks)
    if parsed.revision is not None:
        out["model"], out["revision"] = parsed.model, parsed.revision
    if execution.get("executor"):
        out["executor"] = execution["executor"]
    for kind, plugins in by_kind(config.get("options") or {}, kind_of_name).items():
        for name, values in plugins.items():
            for field, value in values.items():
                out[f"{PREFIX}{kind}:{name}.{field}"] = value
    for field, value in (execution.get("options") or {}).items():
        out[f"{PREFIX}executor:{execution.get('executor')}.{field}"] = value
    return out
