"""The text of ``summary.md``: accuracy by phenomenon and by task, then per space its hypothesis
tests (Mantel r, p and Holm p, and the partial Mantel tests given the lexical controls), its
split-half ceiling and its cost. Undefined values are dashes, never 0."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from lingspace_harness import RunResults

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


def accuracy_lines(run: RunResults) -> list[str]:
    """Accuracy by phenomenon (tasks without one left out of the mean) and by task."""
    accuracy, phenomenon = run.task_values("accuracy"), run.task_values("phenomenon")
    n_test, margin = run.task_values("n_test"), run.task_values("margin")
    by_phenomenon: dict[str, list[float]] = defaultdict(list)
    for t, a in accuracy.items():
        if a is not None:
            by_phenomenon[str(phenomenon[t])].append(a)
    lines = md_table(
        ["phenomenon", "tasks", "accuracy"],
        [[name, len(a), _fixed(sum(a) / len(a))] for name, a in sorted(by_phenomenon.items())],
    )
    return [
        *lines,
        "",
        *md_table(
            ["task", "phenomenon", "n_test", "accuracy", "margin"],
            [[t, phenomenon[t], n_test[t], _fixed(accuracy[t]), _fixed(margin[t])] for t in run.tasks],
        ),
    ]


def space_lines(name: str, run: RunResults) -> list[str]:
    """One space's section: its ceiling, its cost and its hypothesis tests."""
    analysis = run.analysis or {}
    cost = ((run.execution or {}).get("costs") or {}).get(name) or {}
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


def summary_text(run: RunResults) -> str:
    """The whole of ``summary.md``."""
    lines = [f"# {(run.model or {}).get('name')}", ""]
    lines += accuracy_lines(run)
    spaces = list(run.spaces)
    for name in spaces:
        lines += ["", *space_lines(name, run)]
    if spaces:
        lines.append(
            "_Mantel tests: Spearman r, permutation p, Holm p over the run's tests; partial Mantel tests "
            "by Freedman–Lane; undefined values are dashes._"
        )
    return "\n".join(lines).rstrip("\n") + "\n"
