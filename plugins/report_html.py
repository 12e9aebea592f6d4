"""HTML pieces of the ``html`` report: escaping, value formatting, tables, inlined images,
the page, and the tables of a run's tasks, spaces and analysis."""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from lingspace_harness import RunResults

from .report_values import (
    COST_HEADERS,
    cost_rows,
    duration,
    fmt,
    lexical_controls,
    mantel_cells,
    mantel_headers,
    other_partials,
    sub_test,
)
from .space_agreement import REFERENCE

#: Where a report's images go (under the output directory), and its page.
PNG_DIR = "report"
HTML_FILE = "report.html"


def slug(name: str) -> str:
    """A file-name-safe form of a space's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "space"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(headers: list[str], rows: Iterable[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}"><figcaption>{esc(alt)}</figcaption></figure>'
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}
th{background:#f2f2f2}caption{text-align:left;font-weight:bold;padding:0.3em 0}
figure{display:inline-block;margin:0.5em;vertical-align:top}img{max-width:100%}
figcaption{font-size:0.85em;color:#555}
"""


def page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _rows_hypotheses(analysis: dict[str, Any], controls: list[str]) -> list[list[Any]]:
    return [
        [
            space,
            name,
            *mantel_cells(t, controls),
            t.get("n_tasks"),
            t.get("n_permutations"),
            t.get("symmetrised"),
            sub_test(t["upper"]) if "upper" in t else None,
            sub_test(t["lower"]) if "lower" in t else None,
            other_partials(t.get("partial") or {}),
            t.get("n_undefined"),
            t.get("reason"),
        ]
        for space, tests in (analysis.get("hypotheses") or {}).items()
        for name, t in tests.items()
    ]


def hypotheses_section(analysis: dict[str, Any]) -> tuple[str, list[str], list[list[Any]]]:
    """The hypothesis tests: Mantel r, p and Holm p, the partial Mantel tests given each lexical
    control some test has (dashes where a test has none), then the rest."""
    controls = lexical_controls(
        {f"{s}/{h}": t for s, tests in (analysis.get("hypotheses") or {}).items() for h, t in tests.items()}
    )
    headers = [
        "space",
        "hypothesis",
        *mantel_headers(controls),
        "tasks",
        "permutations",
        "symmetrised",
        "upper triangle",
        "lower triangle",
        "partial Mantel given a nested label",
        "undefined pairs left out",
        "note",
    ]
    title = "Hypothesis tests (Mantel, Spearman r; partial Mantel by Freedman–Lane; Holm over the run's tests)"
    return title, headers, _rows_hypotheses(analysis, controls)


def _rows_generalisation(analysis: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            space,
            kind,
            g.get("within"),
            g.get("between"),
            g.get("difference"),
            g.get("p"),
            g.get("ci"),
            g.get("n_undefined"),
            g.get("reason"),
        ]
        for space, kinds in (analysis.get("generalisation") or {}).items()
        for kind, g in kinds.items()
    ]


def _rows_clusters(analysis: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for space, c in (analysis.get("clusters") or {}).items():
        communities = c.get("communities") or {}
        negative = c.get("negative_weights") or {}
        left = c.get("left_out") or {}
        rows.append(
            [
                space,
                c.get("n_communities", len(set(communities.values())) or None),
                c.get("modularity"),
                c.get("distance"),
                negative.get("count") if isinstance(negative, dict) else negative,
                ", ".join(left.get("tasks") or []) or left.get("count"),
                c.get("reason"),
            ]
        )
    return rows


def _rows_agreement(analysis: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for space, c in (analysis.get("clusters") or {}).items():
        for kind, methods in (c.get("agreement") or {}).items():
            for method, a in (methods or {}).items():
                if isinstance(a, dict):
                    rows.append(
                        [
                            space,
                            kind,
                            method,
                            a.get("clusters"),
                            a.get("ari"),
                            a.get("ari_p"),
                            a.get("nmi"),
                            a.get("nmi_p"),
                        ]
                    )
    return rows


def _rows_spaces(run: RunResults) -> list[list[Any]]:
    rows = []
    for name, space in run.spaces.items():
        undefined = space.extra.get("undefined") or {}
        rows.append([name, space.form or "-", len(space.tasks), undefined.get("count"), undefined.get("reason")])
    return rows


def _rows_perplexity(run: RunResults) -> list[list[Any]]:
    """FTGD's premise per tuned source: its relative general-text perplexity change, flagged
    above the space's bound (``perplexity_flagged``)."""
    rows = []
    for name, space in run.spaces.items():
        flags, on = space.extra.get("perplexity_flagged"), space.extra.get("perplexity_on")
        if not isinstance(flags, dict):
            continue
        changes = dict(zip(space.tasks, space.extra.get("perplexity_relative_change") or []))
        for source in flags.get("sources") or []:
            rows.append([name, source, on, changes.get(source), flags.get("bound")])
        if not flags.get("sources"):
            rows.append([name, "none flagged", on, None, flags.get("bound")])
    return rows


#: The columns of the accuracy table by task, beside the task: fields of results.json's ``tasks``.
TASK_COLUMNS = ["phenomenon", "field", "group", "n_test", "accuracy", "margin"]


def accuracy_tables(run: RunResults) -> list[str]:
    """Accuracy by phenomenon and by task."""
    parts = ["<h2>Accuracy</h2>"]
    accuracy, phenomenon = run.task_values("accuracy"), run.task_values("phenomenon", "")
    by_phenomenon: dict[str, list[float]] = defaultdict(list)
    for t, a in accuracy.items():
        if a is not None:
            by_phenomenon[phenomenon[t]].append(a)
    parts.append(
        table(
            ["phenomenon", "tasks", "mean accuracy"],
            [[p, len(a), sum(a) / len(a)] for p, a in sorted(by_phenomenon.items())],
            "by phenomenon",
        )
    )
    columns = [run.task_values(key) for key in TASK_COLUMNS]
    parts.append(table(["task", *TASK_COLUMNS], [[t, *(c[t] for c in columns)] for t in run.tasks], "by task"))
    return parts


def space_sections(run: RunResults) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) of the spaces' own tables: undefined cells, FTGD's perplexity flags, costs."""
    return [
        (
            "Spaces: how each was built (rescored or linear), and its undefined cells (left out of every "
            "analysis, never read as 0)",
            ["space", "form", "tasks", "undefined cells", "why"],
            _rows_spaces(run),
        ),
        (
            "FTGD: sources whose tune raised perplexity above the bound (damage, not targeted change)",
            ["space", "source", "perplexity on", "relative change", "bound"],
            _rows_perplexity(run),
        ),
        (
            "Costs: wall time of each space's units and compute (execution.costs; split halves apart)",
            COST_HEADERS,
            cost_rows((run.execution or {}).get("costs") or {}),
        ),
    ]


def analysis_sections(run: RunResults) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) of each table of results.json's spaces and analysis."""
    analysis = run.analysis or {}
    return [
        *space_sections(run),
        hypotheses_section(analysis),
        (
            "Generalisation: within vs between labels",
            ["space", "labels", "within", "between", "difference", "p", "95% CI", "undefined pairs left out", "note"],
            _rows_generalisation(analysis),
        ),
        (
            "Reliability (split halves)",
            ["space", "r", "r_full (Spearman-Brown)", "undefined pairs left out", "note"],
            [
                [s, v.get("r"), v.get("r_full"), v.get("n_undefined"), v.get("reason")]
                for s, v in (analysis.get("reliability") or {}).items()
            ],
        ),
        (
            "Clusters",
            [
                "space",
                "communities",
                "modularity",
                "distance",
                "negative pairs",
                "left out (undefined similarities)",
                "note",
            ],
            _rows_clusters(analysis),
        ),
        (
            "Cluster agreement with labels",
            ["space", "labels", "clustering", "clusters", "ARI", "ARI p", "NMI", "NMI p"],
            _rows_agreement(analysis),
        ),
    ]


def run_tables(run: RunResults) -> list[str]:
    """The run page's tables: accuracy, then each section of the analysis."""
    parts = accuracy_tables(run)
    for title, headers, rows in analysis_sections(run):
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(table(headers, rows) if rows else "<p>not in this run's analysis</p>")
    return parts


AGREEMENT_HEADERS = [
    "space a",
    "space b",
    "Spearman r",
    f"95% CI (with {REFERENCE})",
    "Mantel p",
    "pairs",
    "undefined pairs left out",
    "symmetrised",
    f"r / {REFERENCE} ceiling",
    "cost a",
    "cost b",
    "note",
]


def probe_costs(agreement: dict[str, Any], costs: dict[str, Any]) -> dict[str, float | None]:
    """Each probe's cost: its space's ``cost_s`` in ``execution.costs`` (None where not recorded)."""
    out: dict[str, float | None] = {}
    for name, probe in (agreement.get("probes") or {}).items():
        space = (probe or {}).get("space")
        out[name] = (costs.get(space) or {}).get("cost_s") if space is not None else None
    return out


def agreement_rows(agreement: dict[str, Any], costs: dict[str, Any]) -> list[list[Any]]:
    """One row per pair of spaces, with each one's cost (from ``execution.costs``); the ratio to
    the reference's ceiling where the pair holds the reference."""
    cost = probe_costs(agreement, costs)
    ratios = ((agreement.get(REFERENCE) or {}).get("probes")) or {}
    rows = []
    for pair in agreement.get("pairs") or []:
        a, b = pair["a"], pair["b"]
        other = a if b == REFERENCE else b if a == REFERENCE else None
        ratio, ci = ((ratios.get(other) or {}).get(k) for k in ("ratio", "ci"))
        rows.append(
            [
                a,
                b,
                pair.get("r"),
                f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else None,
                pair.get("p"),
                pair.get("n_pairs"),
                pair.get("n_undefined"),
                pair.get("symmetrised"),
                ratio,
                duration(cost.get(a)),
                duration(cost.get(b)),
                pair.get("reason"),
            ]
        )
    return rows


def agreement_caption(agreement: dict[str, Any]) -> str:
    """What the table holds, and the reference's ceiling (or why there is none)."""
    text = f"space agreement over {agreement.get('n_tasks')} tasks (off-diagonal cells defined in both)"
    if REFERENCE in agreement:
        limit = agreement[REFERENCE].get("ceiling") or {}
        text += (
            f"; {REFERENCE}'s split-half ceiling (symmetrised halves) r_full = {fmt(limit['r_full'])}"
            if limit.get("r_full") is not None
            else f"; no {REFERENCE} ceiling: {limit.get('reason')}"
        )
    return text
