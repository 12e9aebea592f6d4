"""Undefined similarities stay undefined: NaN in memory, null in results.json, left out (and
counted) by every analysis, never read as 0."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats as ss
from lingspace_harness_plugins.cka import debiased_cka, linear_cka
from lingspace_harness_plugins.clustering import Clusters, cluster_space, cluster_tasks
from lingspace_harness_plugins.ftgd.metrics import normalised
from lingspace_harness_plugins.gradsim import GradSim
from lingspace_harness_plugins.report import layout
from lingspace_harness_plugins.strategies import Full

from lingspace_harness import AnalysisContext, AnalysisOptions, ParamLayout, Space, load_harness
from lingspace_harness.cli import main
from lingspace_harness.results import read_results, write_results
from lingspace_harness.stats import mantel, split_half_reliability, within_between

TASKS = [f"t{i}" for i in range(9)]
GROUPS = ["a", "a", "b", "b", "c", "c", "a", "b", "c"]
ZERO = 4  # the task whose gradient differential is zero


def gradsim_space() -> Space:
    """The gradsim metric's space over 9 tasks in 3 groups, one with a zero differential."""
    rng = np.random.default_rng(0)
    centres = {g: rng.normal(size=40) for g in "abc"}
    vectors = [(centres[g] + 0.6 * rng.normal(size=40)).astype(np.float32) for g in GROUPS]
    vectors[ZERO] = np.zeros(40, dtype=np.float32)
    layout_ = ParamLayout(("model.layers.0.w", "model.layers.1.w"), ((20,), (20,)))
    full = Full()
    options = {"gradsim": GradSim.Options(gradsim_strategy="full"), "full": Full.Options()}
    ctx = SimpleNamespace(
        harness=SimpleNamespace(gradient_strategies={"full": full}),
        options=options.__getitem__,
        task_names=TASKS,
        gradient=lambda name, t: vectors[TASKS.index(t)],
        gradient_layout=layout_,
        data={t: SimpleNamespace(train=[0] * 5) for t in TASKS},
    )
    return GradSim().compute(ctx).space


def results_of(space: dict) -> dict:
    return {
        "version": 1,
        "config": {},
        "model": {"name": "m"},
        "spaces": {"gradsim": space},
        "analysis": {},
        "tasks": {t: {"phenomenon": g, "field": "syntax", "group": g, "accuracy": 0.5} for t, g in zip(TASKS, GROUPS)},
    }


def test_zero_gradient_gives_nan_cells_and_null_in_results_json(tmp_path: Path) -> None:
    space = gradsim_space()
    m = np.array(space.matrix, dtype=float)
    assert np.isnan(m[ZERO]).all() and np.isnan(m[:, ZERO]).all()  # not 0
    assert np.isfinite(np.delete(np.delete(m, ZERO, 0), ZERO, 1)).all()
    saved = space.to_json()
    assert saved["matrix"][ZERO] == [None] * 9 and saved["matrix"][0][ZERO] is None
    assert saved["undefined"] == {"count": 17, "reason": f"zero gradient differential for task {TASKS[ZERO]}"}
    assert saved["per_layer"]["0"][ZERO][0] is None  # undefined numbers in extras too
    write_results(tmp_path, results_of(saved))
    assert "NaN" not in (tmp_path / "results.json").read_text()
    back = read_results(tmp_path)["spaces"]["gradsim"]
    assert np.array_equal(np.array(back["matrix"]), m, equal_nan=True) and np.isnan(back["matrix"][ZERO][0])
    clean = Space(["a", "b"], [[1.0, 0.5], [0.5, 1.0]], {"undefined": "never used"}).to_json()
    assert clean["undefined"] == {"count": 0, "reason": None}


def test_analyses_leave_undefined_cells_out_and_count_them() -> None:
    m = np.array(gradsim_space().matrix, dtype=float)
    keep = [i for i in range(9) if i != ZERO]
    defined = m[np.ix_(keep, keep)]
    same = np.array([[a == b for b in GROUPS] for a in GROUPS], dtype=float)
    test = mantel(m, same, permutations=200, seed=1)
    reduced = mantel(defined, same[np.ix_(keep, keep)], permutations=200, seed=1)
    assert (test["r"], test["p"]) == (reduced["r"], reduced["p"]) and test["r"] > 0.5
    assert test["n_undefined"] == 8 and test["n_pairs"] == 28 and reduced["n_undefined"] == 0
    labels = list(GROUPS)
    wb = within_between(m, labels, permutations=200, bootstraps=50, seed=1)
    wb_reduced = within_between(defined, [labels[i] for i in keep], permutations=200, bootstraps=50, seed=1)
    for key in ("within", "between", "difference", "p", "ci"):
        assert wb[key] == wb_reduced[key]
    assert wb["n_undefined"] == 16 and wb_reduced["n_undefined"] == 0  # ordered pairs
    noise = np.random.default_rng(1).normal(0, 0.05, (9, 9))
    half = split_half_reliability(m, m + noise + noise.T)
    assert half["n_undefined"] == 8 and half["n_pairs"] == 28
    assert half["r"] == split_half_reliability(defined, (m + noise + noise.T)[np.ix_(keep, keep)])["r"]


def test_mantel_permutes_the_full_matrix_and_drops_undefined_pairs_afterwards() -> None:
    m = np.array(gradsim_space().matrix, dtype=float)
    m[ZERO] = m[:, ZERO] = 0.1  # only isolated cells undefined now
    m[0, 2] = m[2, 0] = m[1, 7] = m[7, 1] = np.nan
    same = np.array([[a == b for b in GROUPS] for a in GROUPS], dtype=float)
    test = mantel(m, same, permutations=300, seed=5)
    rows, cols = np.triu_indices(9, 1)
    x = m[rows, cols]
    ok = ~np.isnan(x)
    assert test["n_undefined"] == 2 and test["n_pairs"] == 34
    assert test["r"] == pytest.approx(ss.spearmanr(x[ok], same[rows, cols][ok]).statistic)
    rng = np.random.default_rng(5)
    perms = rng.permuted(np.tile(np.arange(9), (300, 1)), axis=1)
    null = np.array([ss.spearmanr(x[ok], same[np.ix_(p, p)][rows, cols][ok]).statistic for p in perms])
    assert test["p"] == pytest.approx((np.sum(null >= test["r"] - 1e-10) + 1) / 301)


def test_clustering_leaves_out_tasks_with_undefined_similarities() -> None:
    space = gradsim_space().to_json()
    results = results_of(space)
    ctx = AnalysisContext(AnalysisOptions(permutations=50))
    out = Clusters().build(results, ctx)["gradsim"]
    assert out["left_out"] == {"count": 1, "tasks": [TASKS[ZERO]], "reason": "undefined similarities to other tasks"}
    assert TASKS[ZERO] not in out["communities"] and out["order"][-1] == TASKS[ZERO]
    keep = [t for t in TASKS if t != TASKS[ZERO]]
    idx = [TASKS.index(t) for t in keep]
    reduced = cluster_space(keep, np.array(space["matrix"], dtype=float)[np.ix_(idx, idx)], results, ctx)
    for key in ("tasks", "linkage", "communities", "modularity", "agreement"):
        assert out[key] == reduced[key], key
    assert out["order"][:-1] == reduced["order"] and reduced["left_out"]["count"] == 0
    assert out["agreement"]["phenomenon"]["louvain"]["ari"] == 1.0  # the planted groups, found


def test_report_layout_uses_the_clusters_builder() -> None:
    space = gradsim_space().to_json()
    results = results_of(space)
    fallback = layout("gradsim", space, {})  # no clusters analysis: the builder's own function
    built = cluster_tasks(TASKS, space["matrix"])
    assert not fallback.from_analysis and [TASKS[i] for i in fallback.order] == built["order"]
    assert fallback.linkage.tolist() == built["linkage"] and fallback.tree_tasks == built["tasks"]
    assert fallback.communities == [built["communities"].get(t) for t in TASKS]
    assert fallback.communities[ZERO] is None
    analysis = {"clusters": Clusters().build(results, AnalysisContext(AnalysisOptions(permutations=20)))}
    given = layout("gradsim", space, analysis)
    assert given.from_analysis and given.order == fallback.order and given.communities == fallback.communities


def test_cka_of_a_constant_representation_is_nan() -> None:
    rng = np.random.default_rng(0)
    x, constant = rng.normal(size=(10, 5)), np.ones((10, 5))
    assert np.isnan(linear_cka(constant, x)) and np.isnan(linear_cka(x, np.zeros((10, 5))))
    assert np.isnan(debiased_cka(constant, x)) and np.isnan(debiased_cka(np.zeros((10, 5)), x))
    assert linear_cka(x, x) == pytest.approx(1)


def test_normalised_transfer_is_none_where_the_diagonal_is_not_positive() -> None:
    margins = [[0.5, 0.25, -0.5], [0.2, -0.4, 0.1], [0.3, 0.3, 0.0]]
    assert normalised(margins) == [[1.0, 0.5, -1.0], [None] * 3, [None] * 3]


def test_analyse_and_report_on_a_run_with_undefined_cells(tmp_path: Path, capsys) -> None:
    results = results_of(gradsim_space().to_json())
    write_results(tmp_path, results)
    hypothesis = tmp_path / "groups.json"
    hypothesis.write_text(json.dumps({"groups": dict(zip(TASKS, GROUPS))}))
    assert (
        main(["analyse", str(tmp_path), "--permutations", "50", "--bootstraps", "20", "--hypothesis", str(hypothesis)])
        == 0
    )
    assert "8 undefined pairs left out" in capsys.readouterr().out
    analysis = read_results(tmp_path)["analysis"]
    assert analysis["hypotheses"]["gradsim"]["groups"]["n_undefined"] == 8
    assert analysis["generalisation"]["gradsim"]["phenomenon"]["n_undefined"] == 16
    assert analysis["clusters"]["gradsim"]["left_out"]["count"] == 1
    (pair,) = analysis["agreement"]["pairs"]  # gradsim against its centred form, which is defined for t4
    assert (pair["a"], pair["b"], pair["n_undefined"], pair["n_pairs"]) == ("gradsim", "gradsim.centred", 8, 28)
    pytest.importorskip("matplotlib")
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "zero gradient differential for task t4" in text and "hatched cells are undefined" in text
    assert len(list((tmp_path / "report").glob("*.png"))) == 3  # heatmap, dendrogram, graph; one space: no agreement
    assert load_harness() is not None
