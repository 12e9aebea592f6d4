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
import base64
import html
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lingspace_harness import (AnalysisOptions, Harness, UserError, analyse, hookimpl, load_harness,
                               read_results, write_atomic)

from . import report_figures as figures
from .report_claims import claims_section

PNG_DIR = "report"
HTML_FILE = "report.html"
RESULTS_FILE = "results.json"
COMPARISON_FILE = "comparison.json"
ANALYSIS_PARTS = ("hypotheses", "generalisation", "reliability", "clusters")


# -- task order, linkage and communities ------------------------------------------------------

@dataclass
class SpaceLayout:
    """What the plots of one space need, from ``analysis.clusters`` where present."""

    tasks: list[str]
    matrix: np.ndarray
    order: list[int]
    linkage: np.ndarray | None
    communities: list[int]
    from_analysis: bool


def symmetric(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    return (m + m.T) / 2


def fallback_linkage(matrix: Any) -> np.ndarray:
    """Average linkage with optimal leaf ordering on distance = max off-diagonal similarity
    minus similarity (of the symmetrised space)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    sim = symmetric(matrix)
    n = len(sim)
    off = sim[~np.eye(n, dtype=bool)]
    off = off[np.isfinite(off)]
    top = off.max() if off.size else 0.0
    dist = np.clip(top - np.nan_to_num(sim, nan=off.min() if off.size else 0.0), 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return linkage(squareform(dist, checks=False), method="average", optimal_ordering=True)


def fallback_communities(matrix: Any, seed: int = 0) -> list[int]:
    """Louvain communities of the graph of positive (symmetrised) similarities."""
    import networkx as nx

    sim = symmetric(matrix)
    n = len(sim)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from((i, j, sim[i, j]) for i in range(n) for j in range(i + 1, n) if sim[i, j] > 0)
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    label = {}
    for c, members in enumerate(sorted(found, key=lambda m: (-len(m), min(m)))):
        for node in members:
            label[node] = c
    return [label[i] for i in range(n)]


def edge_threshold(matrix: Any) -> float:
    """The weight above which the task graph draws an edge: it keeps the strongest 2N task
    pairs (at most a fifth of them)."""
    sim = symmetric(matrix)
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


def layout(name: str, space: dict[str, Any], analysis: dict[str, Any]) -> SpaceLayout:
    """Order, tree and communities of a space: from ``analysis.clusters[name]`` where it
    covers the space's tasks, else computed here."""
    from scipy.cluster.hierarchy import leaves_list

    tasks = list(space["tasks"])
    matrix = np.asarray(space["matrix"], dtype=float)
    n = len(tasks)
    clusters = (analysis.get("clusters") or {}).get(name) or {}
    if clusters.get("reason"):  # the builder could not cluster this space
        clusters = {}
    linkage = _given_linkage(clusters.get("linkage"), n)
    names = clusters.get("order")
    from_analysis = linkage is not None or (bool(names) and sorted(names) == sorted(tasks))
    if linkage is None and n > 1:
        linkage = fallback_linkage(matrix)
    if names and sorted(names) == sorted(tasks):
        index = {t: i for i, t in enumerate(tasks)}
        order = [index[t] for t in names]
    else:
        order = [int(i) for i in leaves_list(linkage)] if n > 1 else list(range(n))
    given = clusters.get("communities") or {}
    if n and all(t in given for t in tasks):
        communities = [int(given[t]) for t in tasks]
    else:
        communities = fallback_communities(matrix) if n > 1 else [0] * n
    return SpaceLayout(tasks, matrix, order, linkage, communities, from_analysis)


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

def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "space"


# -- HTML ------------------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A compact text form of a results value."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def table(headers: list[str], rows: Iterable[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
            f"<figcaption>{esc(alt)}</figcaption></figure>")


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}
th{background:#f2f2f2}caption{text-align:left;font-weight:bold;padding:0.3em 0}
figure{display:inline-block;margin:0.5em;vertical-align:top}img{max-width:100%}
figcaption{font-size:0.85em;color:#555}
"""


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def _test(t: Any) -> str:
    """A sub-test ``{r, p, ...}`` as ``r (p = ...)``."""
    if not isinstance(t, dict):
        return fmt(t)
    return f"{fmt(t.get('r'))} (p = {fmt(t.get('p'))})" if t.get("r") is not None else fmt(t.get("reason"))


def _rows_hypotheses(analysis: dict[str, Any]) -> list[list[Any]]:
    return [[space, name, t.get("r"), t.get("p"), t.get("n_tasks"), t.get("n_permutations"), t.get("symmetrised"),
             _test(t["upper"]) if "upper" in t else None, _test(t["lower"]) if "lower" in t else None,
             t.get("reason")]
            for space, tests in (analysis.get("hypotheses") or {}).items() for name, t in tests.items()]


def _rows_generalisation(analysis: dict[str, Any]) -> list[list[Any]]:
    return [[space, kind, g.get("within"), g.get("between"), g.get("difference"), g.get("p"), g.get("ci"),
             g.get("reason")]
            for space, kinds in (analysis.get("generalisation") or {}).items() for kind, g in kinds.items()]


def _rows_clusters(analysis: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for space, c in (analysis.get("clusters") or {}).items():
        communities = c.get("communities") or {}
        negative = c.get("negative_weights") or {}
        rows.append([space, c.get("n_communities", len(set(communities.values())) or None), c.get("modularity"),
                     c.get("distance"), negative.get("count") if isinstance(negative, dict) else negative,
                     c.get("reason")])
    return rows


def _rows_agreement(analysis: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for space, c in (analysis.get("clusters") or {}).items():
        for kind, methods in (c.get("agreement") or {}).items():
            for method, a in (methods or {}).items():
                if isinstance(a, dict):
                    rows.append([space, kind, method, a.get("clusters"), a.get("ari"), a.get("ari_p"),
                                 a.get("nmi"), a.get("nmi_p")])
    return rows


def run_tables(results: dict[str, Any]) -> list[str]:
    tasks = results.get("tasks") or {}
    analysis = results.get("analysis") or {}
    parts = ["<h2>Accuracy</h2>"]
    by_phenomenon: dict[str, list[float]] = defaultdict(list)
    for t in tasks.values():
        if t.get("accuracy") is not None:
            by_phenomenon[t.get("phenomenon", "")].append(t["accuracy"])
    parts.append(table(["phenomenon", "tasks", "mean accuracy"],
                       [[p, len(a), sum(a) / len(a)] for p, a in sorted(by_phenomenon.items())],
                       "by phenomenon"))
    parts.append(table(["task", "phenomenon", "field", "group", "n_test", "accuracy", "margin"],
                       [[name, t.get("phenomenon"), t.get("field"), t.get("group"), t.get("n_test"),
                         t.get("accuracy"), t.get("margin")] for name, t in tasks.items()], "by task"))
    sections = [
        ("Hypothesis tests (Mantel, Spearman r)",
         ["space", "hypothesis", "r", "p", "tasks", "permutations", "symmetrised", "upper triangle",
          "lower triangle", "note"], _rows_hypotheses(analysis)),
        ("Generalisation: within vs between labels",
         ["space", "labels", "within", "between", "difference", "p", "95% CI", "note"],
         _rows_generalisation(analysis)),
        ("Reliability (split halves)", ["space", "r", "r_full (Spearman-Brown)", "note"],
         [[s, v.get("r"), v.get("r_full"), v.get("reason")] for s, v in (analysis.get("reliability") or {}).items()]),
        ("Clusters", ["space", "communities", "modularity", "distance", "negative pairs", "note"],
         _rows_clusters(analysis)),
        ("Cluster agreement with labels", ["space", "labels", "clustering", "clusters", "ARI", "ARI p", "NMI",
                                           "NMI p"], _rows_agreement(analysis)),
    ]
    for title, headers, rows in sections:
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(table(headers, rows) if rows else "<p>not in this run's analysis</p>")
    return parts


def write_run_report(results: dict[str, Any], out: Path) -> list[Path]:
    """The PNGs and report.html for one run's results; returns the files written."""
    figures.require_matplotlib()
    analysis = results.get("analysis") or {}
    tasks = results.get("tasks") or {}
    written: list[Path] = []
    body = [table(["model", "revision", "tasks", "metrics", "limit", "seed"],
                  [[(results.get("model") or {}).get("name"), (results.get("config") or {}).get("revision")
                    or (results.get("model") or {}).get("revision"), len(tasks),
                    ", ".join((results.get("config") or {}).get("metrics") or []),
                    (results.get("config") or {}).get("limit"), (results.get("config") or {}).get("seed")]])]
    for name, space in (results.get("spaces") or {}).items():
        lay = layout(name, space, analysis)
        if len(lay.tasks) < 2:
            continue
        phenomena = [str((tasks.get(t) or {}).get("phenomenon", "unknown")) for t in lay.tasks]
        source = "analysis.clusters" if lay.from_analysis else "average linkage (computed here)"
        pngs = {
            "heatmap": (figures.heatmap(lay.matrix, lay.tasks, phenomena, lay.order, name),
                        f"{name}: task space, rows and columns in clustering order ({source})"),
            "dendrogram": (figures.dendrogram(lay.linkage, lay.tasks, phenomena, name),
                           f"{name}: dendrogram, leaves coloured by phenomenon"),
            "graph": (figures.task_graph(lay.matrix, lay.tasks, lay.communities, edge_threshold(lay.matrix), name),
                      f"{name}: task graph, nodes coloured by community"),
        }
        body.append(f"<h2>Space {esc(name)}</h2>")
        for kind, (png, caption) in pngs.items():
            path = out / PNG_DIR / f"{_slug(name)}-{kind}.png"
            write_atomic(path, png)
            written.append(path)
            body.append(image(png, caption))
    body += run_tables(results)
    path = out / HTML_FILE
    write_atomic(path, [page(f"Task spaces: {Path(str((results.get('model') or {}).get('name', ''))).name}", body)])
    return [*written, path]


# -- comparison --------------------------------------------------------------------------------

def _per_run(runs: list[dict[str, Any]], part: str, space: str, field: str) -> dict[str, list[Any]]:
    """``{key: [run[part][space][key][field] per run]}`` (None where a run lacks it)."""
    keys = sorted({k for r in runs for k in (r.get(part) or {}).get(space, {})})
    return {k: [(((r.get(part) or {}).get(space) or {}).get(k) or {}).get(field) for r in runs] for k in keys}


def trajectory_plots(comparison: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(file stem, PNG, caption) for each trajectory over the runs of a comparison."""
    runs = comparison["runs"]
    labels = [r["label"] for r in runs]
    spaces = comparison.get("spaces") or {}
    accuracy = {"mean accuracy": [r.get("mean_accuracy") for r in runs],
                "mean overlap (off-diagonal)": [r.get("mean_overlap") for r in runs]}
    plots = [("accuracy", figures.trajectory(labels, accuracy, "accuracy and parameter sharing", "value"),
              "mean accuracy (and mean overlap) per run")]
    for relation, title in (("previous", "Spearman with the previous run"), ("first", "Spearman with the first run")):
        series = {}
        for space, info in spaces.items():
            rho = {p["b"]: p["spearman"] for p in info.get("pairs", []) if relation in p["relations"]}
            series[space] = [rho.get(label) for label in labels]
        plots.append((f"spearman-{relation}", figures.trajectory(labels, series, title, "Spearman ρ"), title))
    for space in spaces:
        series = _per_run(runs, "hypotheses", space, "r")
        if series:
            plots.append((f"{_slug(space)}-hypotheses",
                          figures.trajectory(labels, series, f"{space}: Mantel r", "Mantel r"),
                          f"{space}: Mantel r with each hypothesis"))
        series = _per_run(runs, "generalisation", space, "difference")
        if series:
            plots.append((f"{_slug(space)}-generalisation",
                          figures.trajectory(labels, series, f"{space}: within − between", "difference"),
                          f"{space}: within − between difference per label kind"))
    return plots


def write_comparison_report(comparison: dict[str, Any], out: Path) -> list[Path]:
    """Trajectory plots and the tables of a comparison.json; returns the files written."""
    figures.require_matplotlib()
    runs = comparison["runs"]
    labels = [r["label"] for r in runs]
    spaces = comparison.get("spaces") or {}
    plots = trajectory_plots(comparison)
    written: list[Path] = []
    body = [table(["run", "model", "revision", "directory", "tasks", "mean accuracy", "mean overlap"],
                  [[r["label"], r.get("model"), r.get("revision"), r.get("dir"), r.get("n_tasks"),
                    r.get("mean_accuracy"), r.get("mean_overlap")] for r in runs], "runs, in order")]
    body = claims_section(comparison, table) + body  # the claims first, above the trajectories
    body += [f"<p>{esc(note)}</p>" for note in comparison.get("notes", [])]
    for name, png, caption in plots:
        path = out / PNG_DIR / f"trajectory-{name}.png"
        write_atomic(path, png)
        written.append(path)
        body.append(image(png, caption))
    for space, info in spaces.items():
        body.append(table(["run", "compared with", "relation", "Spearman ρ", "Mantel p", "permutations", "entries"],
                          [[p["b"], p["a"], ", ".join(p["relations"]), p["spearman"], p.get("p"),
                            p.get("n_permutations"), p.get("n_entries")] for p in info.get("pairs", [])],
                          f"{space} ({len(info.get('tasks', []))} tasks)"))
    path = out / HTML_FILE
    write_atomic(path, [page("Comparison: " + " → ".join(labels), body)])
    return [*written, path]


# -- plugin objects ----------------------------------------------------------------------------

class HtmlReport:
    name = "html"
    description = f"{HTML_FILE} (self-contained) and PNGs under {PNG_DIR}/: heatmaps, dendrograms, task graphs, tables"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        return write_run_report(ensure_analysis(results), Path(out_dir))


class ReportCommand:
    name = "report"
    help = "write report.html (and PNGs) for a run directory or a comparison directory"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, metavar="DIR", help="a run's output directory, or compare's")
        parser.add_argument("--output", type=Path, metavar="OUT", help="where to write (default: DIR)")
        parser.add_argument("--permutations", type=int, help="if DIR has no analysis yet: Mantel permutations")
        parser.add_argument("--seed", type=int, help="if DIR has no analysis yet: its seed")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        figures.require_matplotlib()
        out = args.output or args.dir
        if (args.dir / COMPARISON_FILE).is_file():
            comparison = _read_json(args.dir / COMPARISON_FILE)
            written = write_comparison_report(comparison, out)
        elif (args.dir / RESULTS_FILE).is_file():
            try:
                results = read_results(args.dir)
            except (OSError, ValueError) as exc:
                raise UserError(f"report: cannot read {args.dir / RESULTS_FILE}: {exc}") from None
            results = ensure_analysis(results, harness, permutations=args.permutations, seed=args.seed)
            written = write_run_report(results, out)
        else:
            raise UserError(f"report: {args.dir} has no {RESULTS_FILE} or {COMPARISON_FILE}")
        print(f"wrote {out / HTML_FILE} and {len(written) - 1} images under {out / PNG_DIR}")
        return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"report: cannot read {path}: {exc}") from None


@hookimpl
def lingspace_register_reporters(register):
    register(HtmlReport())


@hookimpl
def lingspace_register_commands(register):
    register(ReportCommand())
