"""``compare``'s printout: the claims table, how the hypotheses nest, the runs, then one table
per space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report_claims import HEADERS as CLAIM_HEADERS
from .report_claims import NESTING_HEADERS, claims_rows, nesting_rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def aligned(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def format_comparison(comparison: dict[str, Any]) -> str:
    """The comparison as plain aligned tables: the runs, then one table per space."""
    runs = comparison["runs"]
    parts = [aligned(CLAIM_HEADERS, claims_rows(comparison))] if comparison.get("claims") else []
    if nesting_rows(comparison):
        parts.append("nesting of the hypotheses\n" + aligned(NESTING_HEADERS, nesting_rows(comparison)))
    parts += [
        aligned(
            ["run", "model", "revision", "tasks", "accuracy", "d_accuracy", "overlap", "d_overlap"],
            [
                [
                    r["label"],
                    Path(r["model"] or "-").name,
                    r["revision"],
                    r["n_tasks"],
                    r["mean_accuracy"],
                    (r["change"] or {}).get("mean_accuracy"),
                    r["mean_overlap"],
                    (r["change"] or {}).get("mean_overlap"),
                ]
                for r in runs
            ],
        )
    ]
    for name, info in comparison["spaces"].items():
        previous = {p["b"]: p for p in info["pairs"] if "previous" in p["relations"]}
        first = {p["b"]: p for p in info["pairs"] if "first" in p["relations"]}
        hyps = list(dict.fromkeys(h for r in runs for h in r["hypotheses"].get(name, {})))
        kinds = list(dict.fromkeys(k for r in runs for k in r["generalisation"].get(name, {})))
        headers = ["run", "rho_prev", "p_prev", "rho_first", "p_first"]
        headers += [f"r_{h}" for h in hyps] + [f"wb_{k}" for k in kinds]
        rows = []
        for r in runs:
            prev, fst = previous.get(r["label"], {}), first.get(r["label"], {})
            rows.append(
                [r["label"], prev.get("spearman"), prev.get("p"), fst.get("spearman"), fst.get("p")]
                + [r["hypotheses"].get(name, {}).get(h, {}).get("r") for h in hyps]
                + [r["generalisation"].get(name, {}).get(k, {}).get("difference") for k in kinds]
            )
        symmetrised = "" if info["symmetric"] else ", symmetrised"
        parts.append(f"space {name} ({len(info['tasks'])} tasks{symmetrised})\n" + aligned(headers, rows))
    return "\n\n".join(parts)
