"""What the reports say: the partial Mantel tests given the lexical controls and Holm's p in the
html hypothesis table, disjoint phenomenon and community palettes, summary.md's tests and
ceilings, costs as durations, and the space agreement heatmap only for two or more spaces."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from lingspace_harness_plugins import report_figures as figures
from lingspace_harness_plugins.markdown import MarkdownReport
from lingspace_harness_plugins.report import HtmlReport
from lingspace_harness_plugins.report_html import AGREEMENT_HEADERS, agreement_rows, run_tables
from lingspace_harness_plugins.report_values import duration
from test_report import PHENOMENA, TASKS, Tables, constructed

from lingspace_harness import RunResults


def _test(r, p, holm, partial=None) -> dict:
    out = {"r": r, "p": p, "p_holm": holm, "n_tasks": 6, "n_permutations": 99, "symmetrised": False}
    return {**out, "partial": partial} if partial is not None else out


def analysed() -> dict:
    """The constructed run with an analysis given (nothing computed): tests with and without
    partial tests, one partial test undefined, ceilings for one space, costs."""
    results = constructed()
    results["analysis"] = {
        "hypotheses": {
            "gradsim": {
                "phenomenon": _test(
                    0.61,
                    0.01,
                    0.03,
                    {
                        "lexical-tokens": {"r": 0.57, "p": 0.02, "p_holm": 0.04},
                        "lexical": {"r": None, "p": None, "reason": "the control is constant"},
                    },
                ),
                "field": _test(0.2, 0.3, 0.6, {"lexical-tokens": {"r": 0.19, "p": 0.31, "p_holm": 0.62}}),
                "lexical-tokens": _test(0.05, 0.7, 1.0),
            },
            "transfer": {"phenomenon": _test(0.42, 0.04, 0.08)},
        },
        "reliability": {"gradsim": {"r": 0.6, "r_full": 0.75, "n_pairs": 15, "n_undefined": 0}},
    }
    results["execution"] = {
        "costs": {
            "gradsim": {"cost_s": 1020.0, "compute_s": 0.5, "units": []},
            "transfer": {"cost_s": None, "compute_s": 3.0, "units": [], "reason": "no seconds recorded"},
        }
    }
    return results


def test_hypothesis_table_has_the_partial_mantel_given_each_lexical_control() -> None:
    page = Tables("".join(run_tables(RunResults.from_json(analysed()))))
    header, *rows = page.table("space", "hypothesis")
    at = {h: i for i, h in enumerate(header)}
    row = {(r[0], r[1]): r for r in rows}
    for h in ("p (Holm)", "partial r given lexical-tokens", "p given lexical-tokens", "p (Holm) given lexical"):
        assert h in at, header
    assert at["partial r given lexical-tokens"] < at["partial r given lexical"]
    phenomenon = row["gradsim", "phenomenon"]
    assert [phenomenon[at[h]] for h in ("r", "p", "p (Holm)")] == ["0.6100", "0.0100", "0.0300"]
    given_tokens = [phenomenon[at[f"{h} given lexical-tokens"]] for h in ("partial r", "p", "p (Holm)")]
    assert given_tokens == ["0.5700", "0.0200", "0.0400"]
    # an undefined partial test: its reason, and dashes, never 0
    given_words = [phenomenon[at[f"{h} given lexical"]] for h in ("partial r", "p", "p (Holm)")]
    assert given_words == ["the control is constant", "–", "–"]
    # no partial test given a control (the control itself; a space tested without controls): dashes
    for key in (("gradsim", "lexical-tokens"), ("transfer", "phenomenon"), ("gradsim", "field")):
        assert row[key][at["partial r given lexical"]] == "–"
    assert row["gradsim", "field"][at["partial r given lexical-tokens"]] == "0.1900"
    assert row["gradsim", "lexical-tokens"][at["partial r given lexical-tokens"]] == "–"


def test_phenomenon_and_community_palettes_are_disjoint(monkeypatch) -> None:
    labels = {tuple(c) for c in figures.label_colours()}
    communities = figures.community_colours()
    assert len(labels) == 20 and len(communities) >= 10
    assert labels.isdisjoint(map(tuple, communities))
    assert all(len(set(np.round(c[:3], 6))) > 1 for c in communities)  # no grey: grey is "left out"
    assert set(figures.palette(PHENOMENA).values()) <= labels
    # the task graph draws its nodes in the community palette
    drawn = []
    monkeypatch.setattr(figures, "_png", lambda fig, dpi=110: drawn.append(fig) or b"")
    matrix = np.asarray(constructed()["spaces"]["gradsim"]["matrix"])
    figures.task_graph(matrix, TASKS, [0, 1, 2, 0, 1, None], 0.5, "gradsim")
    nodes = [tuple(c) for c in drawn[0].axes[0].collections[0].get_facecolors()]
    assert nodes[0] == nodes[3] and len(set(nodes[:3])) == 3
    assert set(nodes[:5]) <= {tuple(c) for c in communities} and labels.isdisjoint(nodes)


def test_summary_md_carries_each_spaces_tests_and_ceiling(tmp_path: Path) -> None:
    results = analysed()
    results["tasks"][TASKS[0]]["accuracy"] = None  # undefined: a dash, not 0
    [path] = MarkdownReport().report(results, tmp_path)
    text = path.read_text()
    gradsim = text.split("## Space gradsim", 1)[1].split("## Space", 1)[0]
    assert "r_full (Spearman-Brown) = 0.7500" in gradsim and "r = 0.6000" in gradsim
    assert "cost: 17 min 00 s" in gradsim
    header = next(line for line in gradsim.splitlines() if line.startswith("| hypothesis"))
    assert "| r | p | p (Holm) | partial r given lexical-tokens |" in header
    assert "| phenomenon | 0.6100 | 0.0100 | 0.0300 | 0.5700 | 0.0200 | 0.0400 | the control is constant | – | – |" in (
        gradsim
    )
    transfer = text.split("## Space transfer", 1)[1]
    assert "split-half ceiling: no split halves in this run" in transfer
    assert "cost: – (no seconds recorded)" in transfer
    assert "| phenomenon | 0.4200 | 0.0400 | 0.0800 |" in transfer
    assert f"| {TASKS[0]} | agr | 8 | – |" in text and "| agr | 1 | 0.650 |" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.031, "0.031 s"),
        (12.34, "12.3 s"),
        (59.96, "1 min 00 s"),
        (245.2, "4 min 05 s"),
        (1020.0, "17 min 00 s"),
        (3599.7, "1 h 00 min"),
        (3720.0, "1 h 02 min"),
        (90061.0, "25 h 01 min"),
        (None, "–"),
        (math.nan, "undefined"),
    ],
)
def test_costs_read_as_durations(seconds, text) -> None:
    assert duration(seconds) == text


def test_agreement_costs_are_durations() -> None:
    agreement = {
        "probes": {"gradsim": {"space": "gradsim"}, "transfer": {"space": "transfer"}},
        "pairs": [{"a": "gradsim", "b": "transfer", "r": 0.3, "p": 0.02}],
    }
    [row] = agreement_rows(agreement, analysed()["execution"]["costs"])
    at = AGREEMENT_HEADERS.index
    assert [row[at("cost a")], row[at("cost b")]] == ["17 min 00 s", "–"]
    page = Tables("".join(run_tables(RunResults.from_json(analysed()))))
    assert page.table("space", "cost (its units and compute)")[1:] == [
        ["gradsim", "17 min 00 s", "0.5 s", "–", "–"],
        ["transfer", "–", "3.0 s", "–", "no seconds recorded"],
    ]


def _one_space(agreement: dict) -> dict:
    results = analysed()
    gradsim = results["spaces"]["gradsim"]
    gradsim["centred"] = (np.asarray(gradsim["matrix"]) - 0.3).tolist()
    del results["spaces"]["transfer"]
    results["analysis"]["agreement"] = agreement
    return results


def test_agreement_heatmap_only_for_two_or_more_spaces(tmp_path: Path) -> None:
    centred = {
        "probes": {"gradsim": {"space": "gradsim", "form": "matrix"}, "gradsim.centred": {"space": "gradsim"}},
        "n_tasks": 6,
        "pairs": [{"a": "gradsim", "b": "gradsim.centred", "r": 0.8, "p": 0.01, "n_pairs": 30}],
    }
    written = HtmlReport().report(_one_space(centred), tmp_path / "one")
    assert "agreement.png" not in [p.name for p in written]
    text = (tmp_path / "one" / "report.html").read_text()
    assert "heatmap not drawn: 1 space in this run (gradsim)" in text
    assert Tables(text).table("space a", "space b")[1][:3] == ["gradsim", "gradsim.centred", "0.8000"]

    alone = {"probes": {"gradsim": {"space": "gradsim"}}, "n_tasks": 6, "pairs": [], "reason": "1 space(s) in this run"}
    written = HtmlReport().report(_one_space(alone), tmp_path / "alone")
    assert "agreement.png" not in [p.name for p in written]
    assert "not drawn: 1 space(s) in this run" in (tmp_path / "alone" / "report.html").read_text()

    two = copy.deepcopy(centred)
    two["probes"]["transfer"] = {"space": "transfer"}
    two["pairs"].append({"a": "gradsim", "b": "transfer", "r": 0.3, "p": 0.2, "n_pairs": 30})
    results = {**analysed(), "analysis": {**analysed()["analysis"], "agreement": two}}
    assert "agreement.png" in [p.name for p in HtmlReport().report(results, tmp_path / "two")]
