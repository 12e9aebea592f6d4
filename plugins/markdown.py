"""The ``markdown`` reporter: ``summary.md`` with accuracy per phenomenon and per task, and per
space its hypothesis tests (with the partial Mantel tests given the lexical controls), split-half
ceiling and cost (:mod:`report_markdown`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lingspace_harness import RunResults, hookimpl

from .report_markdown import SUMMARY_FILE, summary_text


class MarkdownReport:
    name = "markdown"
    description = f"{SUMMARY_FILE}: accuracy by phenomenon and by task; per space its Mantel tests, ceiling and cost"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        path = Path(out_dir) / SUMMARY_FILE
        path.write_text(summary_text(RunResults.from_json(results)), encoding="utf-8")
        return [path]


@hookimpl
def lingspace_register_reporters(register):
    register(MarkdownReport())
