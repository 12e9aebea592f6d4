"""The ``html`` reporter and the ``report`` command.

For a run directory: per space a heatmap (rows and columns in clustering order, phenomenon
strips and legend), a dendrogram and the task graph (nodes coloured by community), saved as
PNGs under ``OUT/report/``, and one self-contained ``OUT/report.html`` (images inlined as
data URIs) with the tables of results.json's ``tasks`` and ``analysis``. For a directory
written by ``compare`` (``comparison.json``): trajectory plots over the runs instead.
matplotlib is the ``report`` extra.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import AnalysisOptions, Harness, RunResults, SpaceResult, UserError, hookimpl, load_harness
from lingspace_harness.analysis import analyse
from lingspace_harness.results import read_results, write_atomic
from lingspace_harness.stats import symmetrise

from . import report_figures as figures
from .clustering import cluster_tasks
from .report_comparison import write_comparison_report
from .report_html import (
    AGREEMENT_HEADERS,
    HTML_FILE,
    PNG_DIR,
    agreement_caption,
    agreement_rows,
    esc,
    image,
    page,
    probe_costs,
    run_tables,
    slug,
    table,
)
from .report_markdown import SUMMARY_FILE, summary_text
from .report_values import duration

RESULTS_FILE = "results.json"
COMPARISON_FILE = "comparison.json"
ANALYSIS_PARTS = ("hypotheses", "generalisation", "reliability", "clusters")


# -- task order, linkage and communities ------------------------------------------------------


@dataclass
class SpaceLayout:
    """What the plots of one space need: the clustering from ``analysis.clusters`` where
    present, else from the same function (:func:`clustering.cluster_tasks`). ``tree_tasks``
    are the clustered tasks (the linkage's leaves); tasks left out of the clustering for
    undefined similarities have community None and come last in ``order``."""

    tasks: list[str]
    matrix: np.ndarray
    order: list[int]
    linkage: np.ndarray | None
    tree_tasks: list[str]
    communities: list[int | None]
    from_analysis: bool


def edge_threshold(matrix: Any) -> float:
    """The weight above which the task graph draws an edge: it keeps the strongest 2N task
    pairs (at most a fifth of them)."""
    sim = symmetrise(matrix)
    n = len(sim)
    upper = sim[np.triu_indices(n, 1)]
    upper = np.sort(upper[np.isfinite(upper)])[::-1]
    if upper.size == 0:
        return 0.0
    keep = max(1, min(2 * n, upper.size // 5))
    return float(upper[keep]) if keep < upper.size else float(upper[-1]) - 1.0


def _given_linkage(value: Any, n: int) -> np.ndarray | None:
    from scipy.cluster.hierarchy import is_valid_linkage

    try:
        given = np.asarray(value or [], dtype=float)
    except (TypeError, ValueError):
        return None
    return given if n > 1 and given.shape == (n - 1, 4) and is_valid_linkage(given) else None


def layout(name: str, space: SpaceResult | dict[str, Any], analysis: dict[str, Any], seed: int = 0) -> SpaceLayout:
    """Order, tree and communities of a space (a :class:`SpaceResult`, or results.json's
    ``spaces[name]``): from ``analysis.clusters[name]`` where it clustered the space's tasks,
    else from :func:`cluster_tasks` (the ``clusters`` builder's own clustering) computed here."""
    if not isinstance(space, SpaceResult):
        space = SpaceResult.from_json(name, space)
    tasks, matrix = space.labelled()
    clusters = (analysis.get("clusters") or {}).get(name) or {}
    names = clusters.get("order") or []
    from_analysis = not clusters.get("reason") and bool(names) and sorted(names) == sorted(tasks)
    if not from_analysis:
        clusters = cluster_tasks(tasks, matrix, seed) if len(tasks) > 1 else {"order": tasks}
    index = {t: i for i, t in enumerate(tasks)}
    tree_tasks = list(clusters.get("tasks") or tasks)
    given = clusters.get("communities") or {}
    communities = [int(given[t]) if given.get(t) is not None else None for t in tasks]
    return SpaceLayout(
        tasks,
        matrix,
        [index[t] for t in clusters["order"]],
        _given_linkage(clusters.get("linkage"), len(tree_tasks)),
        tree_tasks,
        communities,
        from_analysis,
    )


# -- analysis --------------------------------------------------------------------------------


def needs_analysis(results: dict[str, Any]) -> bool:
    analysis = results.get("analysis") or {}
    return bool(results.get("spaces")) and not any(analysis.get(p) for p in ANALYSIS_PARTS)


def ensure_analysis(results: dict[str, Any], harness: Harness | None = None, **options: Any) -> dict[str, Any]:
    """``results`` with its analysis, computed (in memory, with every registered space
    builder) if results.json has none; ``options`` go to :class:`AnalysisOptions`."""
    if not needs_analysis(results):
        return results
    harness = harness or load_harness()
    if not len(harness.space_builders):
        return results
    chosen = AnalysisOptions(**{k: v for k, v in options.items() if v is not None})
    return {**results, "analysis": {**(results.get("analysis") or {}), **analyse(harness, results, chosen)}}


# -- files -----------------------------------------------------------------------------------


def space_figures(space: SpaceResult, run: RunResults) -> dict[str, tuple[bytes, str]]:
    """Kind -> (PNG, caption) of a space's heatmap, dendrogram (where there is a tree) and
    task graph; none for a space over fewer than 2 tasks."""
    name = space.name
    lay = layout(name, space, run.analysis or {})
    if len(lay.tasks) < 2:
        return {}
    known = run.task_values("phenomenon", "unknown")
    phenomena = {t: str(known.get(t, "unknown")) for t in lay.tasks}
    source = "analysis.clusters" if lay.from_analysis else "the clusters builder's clustering, computed here"
    left = [t for t, c in zip(lay.tasks, lay.communities) if c is None]
    note = f"; {len(left)} task(s) left out of the clustering for undefined similarities" if left else ""
    pngs = {
        "heatmap": (
            figures.heatmap(lay.matrix, lay.tasks, [phenomena[t] for t in lay.tasks], lay.order, name),
            f"{name}: task space, rows and columns in clustering order ({source}); hatched cells are undefined{note}",
        )
    }
    if lay.linkage is not None:
        pngs["dendrogram"] = (
            figures.dendrogram(lay.linkage, lay.tree_tasks, [phenomena[t] for t in lay.tree_tasks], name),
            f"{name}: dendrogram, leaves coloured by phenomenon{note}",
        )
    pngs["graph"] = (
        figures.task_graph(lay.matrix, lay.tasks, lay.communities, edge_threshold(lay.matrix), name),
        f"{name}: task graph, nodes coloured by community (grey: left out){note}"
        if left
        else f"{name}: task graph, nodes coloured by community",
    )
    return pngs


def write_run_report(run: RunResults, out: Path) -> list[Path]:
    """The PNGs and report.html for one run's results; returns the files written."""
    figures.require_matplotlib()
    model, config = run.model or {}, run.config
    written: list[Path] = []
    body = [
        table(
            ["model", "revision", "tasks", "metrics", "limit", "seed"],
            [
                [
                    model.get("name"),
                    config.get("revision") or model.get("revision"),
                    len(run.tasks),
                    ", ".join(config.get("metrics") or []),
                    config.get("limit"),
                    config.get("seed"),
                ]
            ],
        )
    ]
    for name, space in run.spaces.items():
        pngs = space_figures(space, run)
        if not pngs:
            continue
        body.append(f"<h2>Space {esc(name)}</h2>")
        for kind, (png, caption) in pngs.items():
            path = out / PNG_DIR / f"{slug(name)}-{kind}.png"
            write_atomic(path, png)
            written.append(path)
            body.append(image(png, caption))
    agreement_body, agreement_files = agreement_section(run, out)
    body += agreement_body
    written += agreement_files
    body += run_tables(run)
    path = out / HTML_FILE
    write_atomic(path, [page(f"Task spaces: {Path(str(model.get('name', ''))).name}", body)])
    return [*written, path]


def agreement_spaces(agreement: dict[str, Any]) -> list[str]:
    """The run's spaces among the agreement's probes (a space's centred form is no space of its own)."""
    return list(dict.fromkeys(str((p or {}).get("space")) for p in (agreement.get("probes") or {}).values()))


def agreement_section(run: RunResults, out: Path) -> tuple[list[str], list[Path]]:
    """The "Space agreement" section and its PNG. The heatmap is drawn for a run of two or more
    spaces only (a space and its own centred form are not two: their pair is in the table); with
    no pairs, a line says why."""
    agreement = (run.analysis or {}).get("agreement")
    if not agreement:
        return [], []
    spaces = agreement_spaces(agreement)
    if not agreement.get("pairs"):
        reason = agreement.get("reason") or "no pairs of spaces"
        return ["<h2>Space agreement</h2>", f"<p>not drawn: {esc(reason)}</p>"], []
    costs = (run.execution or {}).get("costs") or {}
    rows = table(AGREEMENT_HEADERS, agreement_rows(agreement, costs), agreement_caption(agreement))
    if len(spaces) < 2:
        note = f"<p>heatmap not drawn: {len(spaces)} space in this run ({', '.join(map(esc, spaces))})</p>"
        return ["<h2>Space agreement</h2>", note, rows], []
    png = agreement_figure(agreement, costs)
    path = out / PNG_DIR / "agreement.png"
    write_atomic(path, png)
    caption = (
        "Spearman r between every two spaces (asymmetric ones symmetrised), each labelled with its cost "
        "(wall time of its units and compute, execution.costs); dashes: undefined"
    )
    return ["<h2>Space agreement</h2>", image(png, caption), rows], [path]


def agreement_figure(agreement: dict[str, Any], costs: dict[str, Any]) -> bytes:
    """The heatmap of ``analysis.agreement``: each pair's r (NaN where undefined), probes labelled
    with their cost (``execution.costs``, as a duration)."""
    names = list(agreement.get("probes") or {})
    index = {n: i for i, n in enumerate(names)}
    r = np.full((len(names), len(names)), np.nan)
    for pair in agreement["pairs"]:
        i, j = index[pair["a"]], index[pair["b"]]
        r[i, j] = r[j, i] = np.nan if pair.get("r") is None else pair["r"]
    seconds = probe_costs(agreement, costs)
    labels = [f"{n} ({duration(seconds[n])})" if seconds[n] is not None else f"{n} (cost –)" for n in names]
    return figures.agreement_heatmap(labels, r, "space agreement (Spearman r)")


# -- comparison --------------------------------------------------------------------------------


# -- plugin objects ----------------------------------------------------------------------------


class HtmlReport:
    name = "html"
    description = f"{HTML_FILE} (self-contained) and PNGs under {PNG_DIR}/: heatmaps, dendrograms, task graphs, tables"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        return write_run_report(RunResults.from_json(ensure_analysis(results)), Path(out_dir))


class ReportCommand:
    name = "report"
    help = "write report.html (and PNGs) for a run directory (and its summary.md) or a comparison directory"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, metavar="DIR", help="a run's output directory, or compare's")
        parser.add_argument("--output", type=Path, metavar="OUT", help="where to write (default: DIR)")
        parser.add_argument("--permutations", type=int, help="if DIR has no analysis yet: Mantel permutations")
        parser.add_argument("--seed", type=int, help="if DIR has no analysis yet: its seed")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        figures.require_matplotlib()
        out = args.output or args.dir
        summary = ""
        if (args.dir / COMPARISON_FILE).is_file():
            comparison = _read_json(args.dir / COMPARISON_FILE)
            written = write_comparison_report(comparison, out)
        elif (args.dir / RESULTS_FILE).is_file():
            try:
                results = read_results(args.dir)
            except (OSError, ValueError) as exc:
                raise UserError(f"report: cannot read {args.dir / RESULTS_FILE}: {exc}") from exc
            results = ensure_analysis(results, harness, permutations=args.permutations, seed=args.seed)
            run = RunResults.from_json(results, args.dir / RESULTS_FILE)
            written = write_run_report(run, out)
            write_atomic(out / SUMMARY_FILE, [summary_text(run)])
            summary = f", {out / SUMMARY_FILE}"
        else:
            raise UserError(f"report: {args.dir} has no {RESULTS_FILE} or {COMPARISON_FILE}")
        print(f"wrote {out / HTML_FILE}{summary} and {len(written) - 1} images under {out / PNG_DIR}")
        return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"report: cannot read {path}: {exc}") from exc


@hookimpl
def lingspace_register_reporters(register):
    register(HtmlReport())


@hookimpl
def lingspace_register_commands(register):
    register(ReportCommand())
