"""The text of ``summary.md``: accuracy by phenomenon and by task, then per space its hypothesis
tests (Mantel r, p and Holm p, and the partial Mantel tests given the lexical controls), its
split-half ceiling and its cost. Undefined values are dashes, never 0."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .report_values import ceiling_text, duration, fmt, lexical_controls, mantel_cells, mantel_headers

SUMMARY_FILE = "summary.md"


def _cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def _fixed(value: Any) -> str:
    """A value as ``0.123`` (a dash where undefined)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else fmt(value)


def md_table(headers: list[str], rows: Iterable[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def accuracy_lines(tasks: dict[str, Any]) -> list[str]:
    """Accuracy by phenomenon (tasks without one left out of the mean) and by task."""
    by_phenomenon: dict[str, list[float]] = defaultdict(list)
    for t in tasks.values():
        if t.get("accuracy") is not None:
            by_phenomenon[str(t.get("phenomenon"))].append(t["accuracy"])
    lines = md_table(
        ["phenomenon", "tasks", "accuracy"],
        [[name, len(a), _fixed(sum(a) / len(a))] for name, a in sorted(by_phenomenon.items())],
    )
    return [
        *lines,
        "",
        *md_table(
            ["task", "phenomenon", "n_test", "accuracy", "margin"],
            [
                [name, t.get("phenomenon"), t.get("n_test"), _fixed(t.get("accuracy")), _fixed(t.get("margin"))]
                for name, t in tasks.items()
            ],
        ),
    ]


def space_lines(name: str, results: dict[str, Any]) -> list[str]:
    """One space's section: its ceiling, its cost and its hypothesis tests."""
    analysis = results.get("analysis") or {}
    cost = ((results.get("execution") or {}).get("costs") or {}).get(name) or {}
    lines = [f"## Space {name}", ""]
    lines.append(f"- split-half ceiling: {ceiling_text((analysis.get('reliability') or {}).get(name))}")
    if cost:
        why = f" ({cost['reason']})" if cost.get("cost_s") is None and cost.get("reason") else ""
        lines.append(f"- cost: {duration(cost.get('cost_s'))}{why}")
    tests = (analysis.get("hypotheses") or {}).get(name) or {}
    if not tests:
        return [*lines, "- hypothesis tests: none in this run's analysis", ""]
    controls = lexical_controls(tests)
    rows = [[h, *mantel_cells(t or {}, controls), (t or {}).get("reason")] for h, t in tests.items()]
    return [*lines, "", *md_table(["hypothesis", *mantel_headers(controls), "note"], rows), ""]


def summary_text(results: dict[str, Any]) -> str:
    """The whole of ``summary.md``."""
    lines = [f"# {(results.get('model') or {}).get('name')}", ""]
    lines += accuracy_lines(results.get("tasks") or {})
    spaces = list(results.get("spaces") or {})
    for name in spaces:
        lines += ["", *space_lines(name, results)]
    if spaces:
        lines.append(
            "_Mantel tests: Spearman r, permutation p, Holm p over the run's tests; partial Mantel tests "
            "by Freedman–Lane; undefined values are dashes._"
        )
    return "\n".join(lines).rstrip("\n") + "\n"
