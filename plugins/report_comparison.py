"""The ``report`` command's page for a ``compare`` directory: trajectory plots over the runs
(accuracy, overlap, Spearman with the previous and the first run, Mantel r per hypothesis,
within − between per label kind) and the comparison's tables, the claims first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lingspace_harness.results import write_atomic

from . import report_figures as figures
from .report_claims import claims_section
from .report_html import HTML_FILE, PNG_DIR, esc, image, page, slug, table


def _per_run(runs: list[dict[str, Any]], part: str, space: str, field: str) -> dict[str, list[Any]]:
    """``{key: [run[part][space][key][field] per run]}`` (None where a run lacks it)."""
    keys = sorted({k for r in runs for k in (r.get(part) or {}).get(space, {})})
    return {k: [(((r.get(part) or {}).get(space) or {}).get(k) or {}).get(field) for r in runs] for k in keys}


def trajectory_plots(comparison: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(file stem, PNG, caption) for each trajectory over the runs of a comparison."""
    runs = comparison["runs"]
    labels = [r["label"] for r in runs]
    spaces = comparison.get("spaces") or {}
    accuracy = {
        "mean accuracy": [r.get("mean_accuracy") for r in runs],
        "mean overlap (off-diagonal)": [r.get("mean_overlap") for r in runs],
    }
    plots = [
        (
            "accuracy",
            figures.trajectory(labels, accuracy, "accuracy and parameter sharing", "value"),
            "mean accuracy (and mean overlap) per run",
        )
    ]
    for relation, title in (("previous", "Spearman with the previous run"), ("first", "Spearman with the first run")):
        series = {}
        for space, info in spaces.items():
            rho = {p["b"]: p["spearman"] for p in info.get("pairs", []) if relation in p["relations"]}
            series[space] = [rho.get(label) for label in labels]
        plots.append((f"spearman-{relation}", figures.trajectory(labels, series, title, "Spearman ρ"), title))
    for space in spaces:
        series = _per_run(runs, "hypotheses", space, "r")
        if series:
            plots.append(
                (
                    f"{slug(space)}-hypotheses",
                    figures.trajectory(labels, series, f"{space}: Mantel r", "Mantel r"),
                    f"{space}: Mantel r with each hypothesis",
                )
            )
        series = _per_run(runs, "generalisation", space, "difference")
        if series:
            plots.append(
                (
                    f"{slug(space)}-generalisation",
                    figures.trajectory(labels, series, f"{space}: within − between", "difference"),
                    f"{space}: within − between difference per label kind",
                )
            )
    return plots


def write_comparison_report(comparison: dict[str, Any], out: Path) -> list[Path]:
    """Trajectory plots and the tables of a comparison.json; returns the files written."""
    figures.require_matplotlib()
    runs = comparison["runs"]
    labels = [r["label"] for r in runs]
    spaces = comparison.get("spaces") or {}
    plots = trajectory_plots(comparison)
    written: list[Path] = []
    body = [
        table(
            ["run", "model", "revision", "directory", "tasks", "mean accuracy", "mean overlap"],
            [
                [
                    r["label"],
                    r.get("model"),
                    r.get("revision"),
                    r.get("dir"),
                    r.get("n_tasks"),
                    r.get("mean_accuracy"),
                    r.get("mean_overlap"),
                ]
                for r in runs
            ],
            "runs, in order",
        )
    ]
    body = claims_section(comparison, table) + body  # the claims first, above the trajectories
    body += [f"<p>{esc(note)}</p>" for note in comparison.get("notes", [])]
    for name, png, caption in plots:
        path = out / PNG_DIR / f"trajectory-{name}.png"
        write_atomic(path, png)
        written.append(path)
        body.append(image(png, caption))
    for space, info in spaces.items():
        body.append(
            table(
                ["run", "compared with", "relation", "Spearman ρ", "Mantel p", "permutations", "entries"],
                [
                    [
                        p["b"],
                        p["a"],
                        ", ".join(p["relations"]),
                        p["spearman"],
                        p.get("p"),
                        p.get("n_permutations"),
                        p.get("n_entries"),
                    ]
                    for p in info.get("pairs", [])
                ],
                f"{space} ({len(info.get('tasks', []))} tasks)",
            )
        )
    path = out / HTML_FILE
    write_atomic(path, [page("Comparison: " + " → ".join(labels), body)])
    return [*written, path]
