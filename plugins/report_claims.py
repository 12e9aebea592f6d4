"""The claims of a comparison (``comparison.json``'s ``claims``) as one table: a row per statistic
a claim rests on (and per control), with its trend rho and p, the first-to-last change and its
bootstrap interval. ``compare`` prints it; ``report`` puts it at the top of a comparison's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HEADERS = [
    "claim",
    "space",
    "hypothesis",
    "statistic",
    "verdict",
    "rho",
    "p",
    "first→last",
    "95% CI",
    "runs",
    "tasks",
    "undefined cells",
]


def _ci(ci: list[float] | None) -> str | None:
    return None if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


#: How a control's partial-Mantel trend reads in the verdict column (it is no verdict of its own).
MOVES = {1: "(increases)", -1: "(decreases)", 0: "(no trend)", None: "(untested)"}


def _trend_row(claim: dict[str, Any], name: str, stat: dict[str, Any], control: bool = False) -> list[Any]:
    t = stat["trend"]
    p = t["p_decrease"] if claim["verdict"] == "contradicted" else t["p_increase"]
    last = (stat.get("steps") or [{}])[-1]
    verdict = MOVES[stat.get("direction")] if control else claim["verdict"]
    return [
        claim["claim"],
        claim["space"],
        claim.get("hypothesis"),
        name,
        verdict,
        t["rho"],
        p,
        last.get("difference"),
        _ci(last.get("ci")),
        t["n_runs"],
        claim["n_tasks"],
        sum(claim["missing"].values()),
    ]


def _stability_row(claim: dict[str, Any]) -> list[Any]:
    steps = [s for s in claim["steps"] if s["spearman"] is not None]
    rs, ps = [s["spearman"] for s in steps], [s["p"] for s in steps if s["p"] is not None]
    name = "consecutive r (lowest; p highest)"
    if claim["incisive"]:
        name += "; incisive: " + ", ".join(claim["incisive"])
    return [
        claim["claim"],
        claim["space"],
        None,
        name,
        claim["verdict"],
        min(rs) if rs else None,
        max(ps) if ps else None,
        None,
        None,
        claim["n_runs"],
        claim["n_tasks"],
        sum(claim["missing"].values()),
    ]


def claims_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    """One row per statistic of every claim; controls' partial Mantel trends as ``partial r | NAME``."""
    rows = []
    for claim in (comparison.get("claims") or {}).get("claims", []):
        if claim["claim"] == "stability":
            rows.append(_stability_row(claim))
            continue
        for name, stat in claim["statistics"].items():
            rows.append(_trend_row(claim, name, stat))
        for control, stat in (claim.get("controls") or {}).items():
            rows.append(_trend_row(claim, f"partial r | {control}", stat, control=True))
    return rows


def claims_caption(comparison: dict[str, Any]) -> str:
    c = comparison.get("claims") or {}
    return (
        f"claims (alpha = {c.get('alpha')}; trend: Spearman rho against the run order, one-sided "
        f"permutation p; CI: task bootstrap, {c.get('n_bootstraps')} resamples)"
    )


def claims_section(comparison: dict[str, Any], table: Callable[..., str]) -> list[str]:
    """The claims table rendered by ``table(headers, rows, caption)``; nothing without claims."""
    rows = claims_rows(comparison)
    return [table(HEADERS, rows, claims_caption(comparison))] if rows else []
