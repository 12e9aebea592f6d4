"""The ``markdown`` reporter: ``summary.md`` with accuracy per phenomenon and per task."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from lingspace_harness import hookimpl


class MarkdownReport:
    name = "markdown"
    description = "summary.md: accuracy and margin by phenomenon and by task"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        tasks = results["tasks"]
        by_phenomenon: dict[str, list[float]] = defaultdict(list)
        for t in tasks.values():
            by_phenomenon[t["phenomenon"]].append(t["accuracy"])
        lines = [f"# {results['model']['name']}", "", "| phenomenon | tasks | accuracy |", "|---|---|---|"]
        for name, accs in sorted(by_phenomenon.items()):
            lines.append(f"| {name} | {len(accs)} | {sum(accs) / len(accs):.3f} |")
        lines += ["", "| task | phenomenon | n_test | accuracy | margin |", "|---|---|---|---|---|"]
        for name, t in tasks.items():
            lines.append(f"| {name} | {t['phenomenon']} | {t['n_test']} | {t['accuracy']:.3f} | {t['margin']:.3f} |")
        path = out_dir / "summary.md"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [path]


@hookimpl
def lingspace_register_reporters(register):
    register(MarkdownReport())
