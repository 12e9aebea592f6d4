"""``lingspace_harness.run(...)``: a run from Python, with the settings ``run`` takes, through the
same parser, checks and runner as the CLI; it returns the typed results (``RunResults``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .commands import RunCommand
from .config_file import settings_defaults
from .errors import UserError
from .plugins import Harness, load_harness
from .run_results import RunResults, load
from .runner import run as run_config

__all__ = ["run"]


def run(
    model: str,
    tasks: str | Sequence[str],
    *,
    metrics: str | Sequence[str] = (),
    output: str | Path = "out",
    overwrite: bool = False,
    options: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    executor: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    harness: Harness | None = None,
    **settings: Any,
) -> RunResults:
    """Run as ``lingspace-harness run`` does and return its results (``load(output)``).

    ``settings`` are the keys run.json records under ``config`` (``data_dir``, ``limit``,
    ``seed``, ``split_half``, ``dtype``, ``batch_size``, ``reporters``, ``analysis``, ...), each
    with the value its option takes; ``options`` are the plugins' own, by kind and name, as
    results.json records them: ``{"metric": {"transfer": {"ftgd_steps": 10}}}``. Bad settings
    raise :class:`lingspace_harness.UserError` before anything loads. A shard (``shard=(i, n)``)
    writes no results: use the CLI's ``merge``."""
    if settings.get("shard"):
        raise UserError("run(): a shard writes no results; run shards with the CLI, then `merge`")
    harness = harness or load_harness()
    config = {
        "model": model,
        "tasks": [tasks] if isinstance(tasks, str) else list(tasks),
        "metrics": [metrics] if isinstance(metrics, str) else list(metrics),
        "output": str(output),
        "options": {k: {n: dict(v) for n, v in p.items()} for k, p in (options or {}).items()},
        **settings,
    }
    execution = {"executor": executor, "options": dict(executor_options or {})} if executor else {}
    from .cli import _parser  # here: ``python -m lingspace_harness.cli`` must find the cli module unimported

    parser, commands, parsers = _parser(harness)
    parsers["run"].set_defaults(**settings_defaults(config, execution, harness.optioned_kind, "run()"))
    command = commands["run"]
    if not isinstance(command, RunCommand):
        raise TypeError("the run command is not the core's")
    parsed = command.config(parser.parse_args(["run"]))
    run_config(harness, parsed, overwrite=overwrite)
    return load(parsed.output)
