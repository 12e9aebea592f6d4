"""The ``html`` reporter and the ``report`` command: files, order, tables, escaping, Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import _missing
from lingspace_harness_plugins.report import HtmlReport, layout
from lingspace_harness_plugins.report_comparison import write_comparison_report
from lingspace_harness_plugins.report_values import duration
from lingspace_harness_plugins.space_agreement import bootstrap_ci

from lingspace_harness import UserError
from lingspace_harness.cli import main
from lingspace_harness.stats import mantel, symmetrise

# Phenomena interleaved, so that a clustering order has to regroup them.
TASKS = [f"blimp_t{i}" for i in range(6)]
PHENOMENA = ["agr", "isl", "npi", "agr", "isl", "npi"]
EVIL = '<script>alert("x")</script>'


def constructed() -> dict:
    """Six tasks in three phenomena: a symmetric space with strong within-phenomenon
    similarity, and an asymmetric one."""
    rng = np.random.default_rng(0)
    same = np.array([[a == b for b in PHENOMENA] for a in PHENOMENA], dtype=float)
    noise = rng.uniform(0, 0.1, (6, 6))
    sym = 0.1 + 0.7 * same + (noise + noise.T) / 2
    np.fill_diagonal(sym, 1.0)
    transfer = 0.5 * same + rng.normal(0, 0.2, (6, 6))
    return {
        "version": 1,
        "config": {"model": EVIL, "revision": None, "metrics": ["gradsim", "transfer"], "limit": 8, "seed": 0},
        "model": {"name": EVIL, "revision": None},
        "tasks": {
            t: {
                "phenomenon": p,
                "field": "syntax" if i < 3 else "semantics",
                "group": p,
                "n_test": 8,
                "accuracy": 0.5 + i / 20,
                "margin": 0.1 * i,
            }
            for i, (t, p) in enumerate(zip(TASKS, PHENOMENA))
        },
        "spaces": {
            "gradsim": {"tasks": TASKS, "matrix": sym.tolist()},
            "transfer": {"tasks": TASKS, "matrix": transfer.tolist()},
        },
        "analysis": {},
    }


def write_run(directory: Path, results: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results))
    return directory


class Tables(HTMLParser):
    """Tables of an HTML page as lists of rows (header row first), plus the img srcs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str, second_header: str) -> list[list[str]]:
        return next(t for t in self.tables if t[0][:2] == [first_header, second_header])


def test_fallback_order_regroups_phenomena_and_analysis_order_wins() -> None:
    results = constructed()
    lay = layout("gradsim", results["spaces"]["gradsim"], {})
    assert sorted(lay.order) == list(range(6)) and lay.linkage.shape == (5, 4) and not lay.from_analysis
    positions = {p: sorted(lay.order.index(i) for i, q in enumerate(PHENOMENA) if q == p) for p in set(PHENOMENA)}
    assert all(b - a == 1 for a, b in positions.values()), lay.order  # each phenomenon's two tasks adjacent
    assert len(set(lay.communities)) == 3
    assert all(lay.communities[i] == lay.communities[i + 3] for i in range(3))

    given = {"clusters": {"gradsim": {"order": TASKS[::-1], "communities": {t: 7 for t in TASKS}}}}
    lay = layout("gradsim", results["spaces"]["gradsim"], given)
    assert lay.order == [5, 4, 3, 2, 1, 0] and lay.from_analysis and lay.communities == [7] * 6
    stale = {"clusters": {"gradsim": {"order": TASKS[:3]}}}  # does not cover the space's tasks
    assert not layout("gradsim", results["spaces"]["gradsim"], stale).from_analysis
    failed = {"clusters": {"gradsim": {"order": TASKS, "linkage": [], "reason": "missing entries"}}}
    assert not layout("gradsim", results["spaces"]["gradsim"], failed).from_analysis


def test_report_command_writes_images_and_tables(tmp_path: Path, capsys) -> None:
    run_dir = write_run(tmp_path / "run", constructed())
    before = (run_dir / "results.json").read_bytes()
    out = tmp_path / "out"
    assert main(["report", str(run_dir), "--output", str(out), "--permutations", "99"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (run_dir / "results.json").read_bytes() == before  # the run is read, never rewritten
    pngs = sorted((out / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["agreement.png"] + [
        f"{s}-{k}.png" for s in ("gradsim", "transfer") for k in ("dendrogram", "graph", "heatmap")
    ]
    text = (out / "report.html").read_text()
    page = Tables(text)
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in page.images)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert embedded == sorted(p.read_bytes() for p in pngs)
    assert not re.search(r"<script|<link|src=\"http|url\(", text)  # self-contained, no scripts
    assert EVIL not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text

    accuracy = page.table("task", "phenomenon")
    assert [row[0] for row in accuracy[1:]] == TASKS and accuracy[3][5] == "0.6000"
    # the analysis was computed for the report: its Mantel r is the one stats.mantel gives
    header, *rows = page.table("space", "hypothesis")
    tests = {(r[0], r[1]): r for r in rows}
    same = np.array([[a == b for b in PHENOMENA] for a in PHENOMENA], dtype=float)
    expected = mantel(constructed()["spaces"]["gradsim"]["matrix"], same, permutations=99)
    assert tests["gradsim", "phenomenon"][2] == f"{expected['r']:.4f}" and expected["r"] > 0.5
    assert tests["transfer", "phenomenon"][header.index("symmetrised")] == "yes"  # with both triangles
    within = {(r[0], r[1]): r for r in page.table("space", "labels")[1:] if len(r) == 9}
    assert float(within["gradsim", "phenomenon"][4]) > 0.5
    assert page.table("space", "communities")[1][0] == "gradsim"
    # space agreement: the two spaces' r (transfer symmetrised, the symmetric gradsim permuted);
    # no costs recorded, no ceiling: dashes
    (header, row), spaces = page.table("space a", "space b"), constructed()["spaces"]
    expected = mantel(symmetrise(spaces["transfer"]["matrix"]), spaces["gradsim"]["matrix"], permutations=99)
    low, high = bootstrap_ci(spaces["gradsim"]["matrix"], spaces["transfer"]["matrix"], 1000, 0)
    assert row[:5] == [
        "gradsim",
        "transfer",
        f"{expected['r']:.4f}",
        f"[{low:.4f}, {high:.4f}]",
        f"{expected['p']:.4f}",
    ]
    assert row[7:11] == ["yes", "–", "–", "–"] and header[8] == "r / transfer ceiling"
    assert "no transfer ceiling: transfer has no split halves" in text


def test_report_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results.json or comparison.json" in err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "Traceback" not in err


def test_missing_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch, capsys) -> None:
    run_dir = write_run(tmp_path / "run", constructed())
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'lingspace-harness[report]'" in err
    with pytest.raises(UserError, match=r"lingspace-harness\[report\]"):
        HtmlReport().report(constructed(), tmp_path / "x")
    assert not (run_dir / "report.html").exists() and not (tmp_path / "x" / "report.html").exists()


def test_run_with_html_reporter(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "blimp_anaphor_*,blimp_passive_*",
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "8",
                "--metric",
                "gradsim,overlap",
                "--report",
                "html",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    page = Tables((out / "report.html").read_text())
    assert len(page.images) == 7 and len(list((out / "report").glob("*.png"))) == 7  # 3 per space, agreement
    rows = page.table("space a", "space b")
    assert [row[:2] for row in rows[1:]] == [
        ["gradsim", "gradsim.centred"],
        ["gradsim", "overlap"],
        ["gradsim.centred", "overlap"],
    ]
    costs = json.loads((out / "results.json").read_text())["execution"]["costs"]
    assert rows[2][9:11] == [duration(costs["gradsim"]["cost_s"]), duration(costs["overlap"]["cost_s"])]
    assert rows[2][9].endswith(" s")  # a duration
    assert rows[2][3] == rows[2][8] == "–"  # no transfer: no interval with it, no ratio to its ceiling
    tasks = [row[0] for row in page.table("task", "phenomenon")[1:]]
    assert tasks == list(json.loads((out / "results.json").read_text())["tasks"])


def test_comparison_report_plots_trajectories(tmp_path: Path) -> None:
    runs = [
        {
            "label": label,
            "model": "m",
            "revision": label,
            "dir": f"/x/{label}",
            "n_tasks": 6,
            "mean_accuracy": acc,
            "mean_overlap": None,
            "hypotheses": {"gradsim": {"phenomenon": {"r": r, "p": 0.01}}},
            "generalisation": {"gradsim": {"phenomenon": {"difference": r / 2}}},
        }
        for label, acc, r in (("step1", 0.5, 0.1), ("step2", 0.6, 0.3), ("step3", 0.7, 0.5))
    ]
    pairs = [
        {"a": "step1", "b": "step2", "relations": ["previous", "first"], "spearman": 0.8, "p": 0.01},
        {"a": "step2", "b": "step3", "relations": ["previous"], "spearman": 0.9, "p": 0.01},
        {"a": "step1", "b": "step3", "relations": ["first"], "spearman": 0.7, "p": 0.02},
    ]
    comparison = {"runs": runs, "notes": ["a <note>"], "spaces": {"gradsim": {"tasks": TASKS, "pairs": pairs}}}
    written = write_comparison_report(comparison, tmp_path)
    names = sorted(p.name for p in written[:-1])
    assert names == [
        "trajectory-accuracy.png",
        "trajectory-gradsim-generalisation.png",
        "trajectory-gradsim-hypotheses.png",
        "trajectory-spearman-first.png",
        "trajectory-spearman-previous.png",
    ]
    page = Tables(written[-1].read_text())
    assert len(page.images) == 5 and "a &lt;note&gt;" in written[-1].read_text()
    assert [r[0] for r in page.table("run", "model")[1:]] == ["step1", "step2", "step3"]
    rows = page.table("run", "compared with")[1:]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("step2", "step1", "0.8000"),
        ("step3", "step2", "0.9000"),
        ("step3", "step1", "0.7000"),
    ]


def test_report_on_a_finished_run(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    """A real run (tiny model, three learned spaces, the run's own analysis): one heatmap,
    dendrogram and graph per space, each space in the order analysis.clusters gave."""
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--tasks",
                "blimp_anaphor_*,blimp_passive_*",
                "--data-dir",
                str(blimp_dir),
                "--limit",
                "6",
                "--metric",
                "gradsim,overlap,transfer",
                "--ftgd-steps",
                "2",
                "--permutations",
                "99",
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    spaces = results["spaces"]
    assert sorted(spaces) == ["gradsim", "overlap", "transfer"]
    assert all(not results["analysis"]["clusters"][name].get("reason") for name in spaces)
    assert main(["report", str(tmp_path), "--permutations", "99"]) == 0
    text = (tmp_path / "report.html").read_text()
    trees = sum(1 for name in spaces if results["analysis"]["clusters"][name].get("linkage") is not False)
    assert len(Tables(text).images) >= 2 * len(spaces)  # a heatmap and a graph each, a dendrogram where there is a tree
    captions = re.findall(r"<figcaption>[^<]*clustering order \(analysis\.clusters\)", text)
    assert len(captions) == len(spaces) and trees


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        _missing("a headless Chromium (`chromium` on PATH)")
    return found


def _render(browser: str, page: Path) -> tuple[str, str]:
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(page.parent)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    run_dir = write_run(tmp_path / "run", constructed())
    assert main(["report", str(run_dir), "--permutations", "99"]) == 0
    report = run_dir / "report.html"
    dom, log = _render(browser, report)
    assert not [line for line in log.splitlines() if ":CONSOLE" in line], log
    page = Tables(dom)
    assert len(page.images) == 7 and page.table("space", "hypothesis") and page.table("space a", "space b")
    # A copy with a probe script: every embedded image must decode in the browser.
    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => { const i = [...document.images];"
            " document.body.dataset.decoded = i.filter(x => x.complete && x.naturalWidth > 100).length"
            " + '/' + i.length; });</script></body>",
        )
    )
    dom, _ = _render(browser, probe)
    assert 'data-decoded="7/7"' in dom  # 3 per space, and the agreement heatmap
