"""How the reports (``report.html`` and ``summary.md``) write results.json's values: numbers,
durations, and each space's hypothesis tests with their partial Mantel tests given the lexical
controls, its split-half ceiling and its cost (``execution.costs``). An undefined value is a dash
(or its reason), never 0."""

from __future__ import annotations

import math
from typing import Any

from .hypotheses import CONTROLS

#: What an absent or undefined value reads as.
DASH = "–"


def fmt(value: Any) -> str:
    """A compact text form of a results value."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "undefined"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def duration(seconds: Any) -> str:
    """Seconds as a person reads them: ``0.031 s``, ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``
    (a dash where not recorded)."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return DASH
    if not math.isfinite(seconds) or seconds < 0:
        return fmt(float(seconds))
    if seconds < 1:
        return f"{seconds:.2g} s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    if round(seconds) < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


# -- hypothesis tests -----------------------------------------------------------------------------


def is_lexical(control: str) -> bool:
    return control in CONTROLS or control.startswith("lexical")


def lexical_controls(tests: dict[str, Any]) -> list[str]:
    """The lexical controls that some test of ``tests`` (hypothesis -> Mantel test, one space's or
    several spaces' merged) has a partial Mantel test given: the built-in ones in their order, then
    any other ``lexical*`` control as first seen."""
    given = [c for t in tests.values() for c in ((t or {}).get("partial") or {})]
    return [c for c in CONTROLS if c in given] + [
        c for c in dict.fromkeys(given) if is_lexical(c) and c not in CONTROLS
    ]


def mantel_headers(controls: list[str]) -> list[str]:
    """Headers of :func:`mantel_cells`."""
    partial = [f"{k} given {c}" for c in controls for k in ("partial r", "p", "p (Holm)")]
    return ["r", "p", "p (Holm)", *partial]


def mantel_cells(t: dict[str, Any], controls: list[str]) -> list[Any]:
    """A Mantel test's r, p and Holm p, then per control its partial Mantel r, p and Holm p (where
    the partial test has no r: its reason in the r cell, dashes beside; where there is none: dashes)."""
    cells = [t.get("r"), t.get("p"), t.get("p_holm")]
    for control in controls:
        partial = (t.get("partial") or {}).get(control) or {}
        r = partial.get("r") if partial.get("r") is not None else partial.get("reason")
        cells += [r, partial.get("p"), partial.get("p_holm")]
    return cells


def other_partials(partial: dict[str, Any]) -> str | None:
    """The partial Mantel tests given anything but a lexical control (the labels nested in a
    label), as ``given: r (p = ..., Holm ...)``."""
    cells = []
    for name, t in partial.items():
        if is_lexical(name):
            continue
        if t.get("r") is None:
            cells.append(f"{name}: {fmt(t.get('reason'))}")
        else:
            cells.append(f"{name}: {fmt(t['r'])} (p = {fmt(t.get('p'))}, Holm {fmt(t.get('p_holm'))})")
    return "; ".join(cells) or None


def sub_test(t: Any) -> str:
    """A sub-test ``{r, p, ...}`` (a triangle of an asymmetric space) as ``r (p = ...)``."""
    if not isinstance(t, dict):
        return fmt(t)
    return f"{fmt(t.get('r'))} (p = {fmt(t.get('p'))})" if t.get("r") is not None else fmt(t.get("reason"))


# -- ceilings and costs -----------------------------------------------------------------------------


def ceiling_text(reliability: dict[str, Any] | None) -> str:
    """A space's split-half ceiling (``analysis.reliability.<space>``) in one line."""
    if not reliability:
        return "no split halves in this run"
    if reliability.get("r") is None and reliability.get("r_full") is None:
        return f"undefined: {fmt(reliability.get('reason'))}"
    return f"r = {fmt(reliability.get('r'))}, r_full (Spearman-Brown) = {fmt(reliability.get('r_full'))}"


COST_HEADERS = ["space", "cost (its units and compute)", "compute", "split halves", "note"]


def cost_rows(costs: dict[str, Any]) -> list[list[Any]]:
    """One row per space of ``execution.costs``: its cost, compute and split halves as durations."""
    return [
        [
            name,
            duration(c.get("cost_s")),
            duration(c.get("compute_s")),
            duration(c.get("split_half_s")),
            c.get("reason"),
        ]
        for name, c in costs.items()
        if isinstance(c, dict)
    ]
