"""The claims of a comparison (``comparison.json``'s ``claims``) as one table: a row per statistic
a claim rests on (and per control; a corrected statistic's row beneath its raw one), with the test
that decided its direction, its order test (rho, p, Holm p), slope interval, the first-to-last
change and its bootstrap interval; then how the hypotheses nest. ``compare`` prints it; ``report``
puts it at the top of a comparison's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HEADERS = [
    "claim",
    "space",
    "hypothesis",
    "statistic",
    "verdict",
    "decided by",
    "rho",
    "p",
    "p (Holm)",
    "slope 95% CI",
    "first→last",
    "95% CI",
    "runs",
    "tasks",
    "undefined cells",
]
NESTING_HEADERS = ["space", "lower", "higher", "relation"]


def _ci(ci: list[float] | None) -> str | None:
    return None if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


#: How a statistic that does not vote (a control's partial Mantel trend, a raw statistic beside
#: its corrected one, a difference that gives way) reads in the verdict column.
MOVES = {1: "(increases)", -1: "(decreases)", 0: "(no trend)", None: "(untested)"}


def _verdict(claim: dict[str, Any]) -> str:
    raw = claim.get("verdict_raw")
    shown = claim["verdict"] + (" (corrected)" if claim.get("basis") == "attenuation-corrected" else "")
    return shown + (f"; raw: {raw}" if raw and raw != claim["verdict"] else "")


def _trend_row(claim: dict[str, Any], name: str, stat: dict[str, Any], votes: bool) -> list[Any]:
    t = stat["trend"]
    side = "p_decrease" if claim["verdict"] == "contradicted" else "p_increase"
    last = (stat.get("steps") or [{}])[-1]
    return [
        claim["claim"],
        claim["space"],
        claim.get("hypothesis"),
        name,
        _verdict(claim) if votes else MOVES[stat.get("direction")],
        stat.get("decided_by"),
        t["rho"],
        t[side],
        t.get(f"{side}_holm"),
        _ci((stat.get("slope") or {}).get("ci")),
        last.get("difference"),
        _ci(last.get("ci")),
        t["n_runs"],
        claim["n_tasks"],
        sum(claim["missing"].values()),
    ]


def _stat_rows(claim: dict[str, Any], name: str, stat: dict[str, Any], control: bool = False) -> list[list[Any]]:
    """A statistic's row and, where it is corrected for attenuation, the corrected row below it."""
    vote = "none" if control else stat.get("vote", "raw")
    rows = [_trend_row(claim, name, stat, vote == "raw")]
    if stat.get("corrected"):
        rows.append(_trend_row(claim, f"{name} / √r_full", stat["corrected"], vote == "corrected"))
    return rows


def _stability_row(claim: dict[str, Any]) -> list[Any]:
    steps = [s for s in claim["steps"] if s["spearman"] is not None]
    rs, ps = [s["spearman"] for s in steps], [s["p"] for s in steps if s["p"] is not None]
    holm = [s["p_holm"] for s in steps if s.get("p_holm") is not None]
    name = "consecutive r (lowest; p highest)"
    if claim["incisive"]:
        name += "; incisive: " + ", ".join(claim["incisive"])
    return [
        claim["claim"],
        claim["space"],
        None,
        name,
        claim["verdict"],
        "Mantel p of every step; bootstrap of the others",
        min(rs) if rs else None,
        max(ps) if ps else None,
        max(holm) if holm else None,
        None,
        None,
        None,
        claim["n_runs"],
        claim["n_tasks"],
        sum(claim["missing"].values()),
    ]


def _name(claim: dict[str, Any], name: str) -> str:
    if claim["claim"] == "sharing" and name == "excess":
        kinds = sorted({c.get("kind") or "no" for c in claim.get("chance", [])})
        return f"excess over {'/'.join(kinds)} chance"
    return name


def claims_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    """One row per statistic of every claim (and per corrected statistic, beneath it); controls'
    partial Mantel trends as ``partial r | NAME``."""
    rows = []
    for claim in (comparison.get("claims") or {}).get("claims", []):
        if claim["claim"] == "stability":
            rows.append(_stability_row(claim))
            continue
        for name, stat in claim["statistics"].items():
            rows += _stat_rows(claim, _name(claim, name), stat)
        for control, stat in (claim.get("controls") or {}).items():
            rows += _stat_rows(claim, f"partial r | {control}", stat, control=True)
    return rows


def nesting_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    """The hypotheses' nesting per space, derived from the labels."""
    rows = []
    for space, found in ((comparison.get("claims") or {}).get("nesting") or {}).items():
        rows += [[space, a, b, "nested: every same-lower pair is a same-higher pair"] for a, b in found["nested"]]
        rows += [[space, a, b, "equivalent: the same pairs"] for a, b in found["equivalent"]]
    return rows


def claims_caption(comparison: dict[str, Any]) -> str:
    c = comparison.get("claims") or {}
    holm = c.get("holm") or {}
    return (
        f"claims (alpha = {c.get('alpha')}; a direction needs the slope's 95% task-bootstrap interval to "
        "exclude 0 and, with 4+ runs, the order test (Spearman rho against the run order, one-sided "
        f"permutation p) to agree; CI: task bootstrap, {c.get('n_bootstraps')} resamples; / √r_full: "
        "divided by the square root of the split-half reliability on each resample, which the verdict "
        f"then uses; p (Holm): over the family of {holm.get('family_size', '-')} tests)"
    )


NESTING_CAPTION = "nesting of the hypotheses (from the labels): a higher label's claim also tests it given the lower"


def claims_section(comparison: dict[str, Any], table: Callable[..., str]) -> list[str]:
    """The claims table and the nesting table rendered by ``table(headers, rows, caption)``;
    nothing without claims."""
    rows, nested = claims_rows(comparison), nesting_rows(comparison)
    out = [table(HEADERS, rows, claims_caption(comparison))] if rows else []
    return out + ([table(NESTING_HEADERS, nested, NESTING_CAPTION)] if rows and nested else [])
