"""Hypothesis spaces, the analysis space builders, clustering and the ``analyse`` command."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from test_stats import planted

from lingspace_harness import (
    AnalysisContext,
    AnalysisOptions,
    DataError,
    UnknownNameError,
    UserError,
    hookimpl,
    load_harness,
)
from lingspace_harness.analysis import analyse, hypothesis_from_file
from lingspace_harness.cli import main

FAST = AnalysisOptions(permutations=499, bootstraps=200)


def make_results(
    spaces: dict[str, np.ndarray],
    labels: list[str],
    tasks: list[str] | None = None,
    vocabulary: list[list[str]] | None = None,
) -> dict:
    """A results dict as ``run`` writes it: phenomenon = group = the labels, field pairs them."""
    tasks = tasks or [f"t{i:02d}" for i in range(len(labels))]
    info = {}
    for i, (t, label) in enumerate(zip(tasks, labels)):
        info[t] = {
            "phenomenon": label,
            "group": label,
            "field": "f" + str(int(label[1:]) // 2),
            "n_test": 10,
            "accuracy": 0.5,
        }
        if vocabulary is not None:
            info[t]["vocabulary"] = vocabulary[i]
    return {
        "version": 1,
        "config": {},
        "model": {},
        "tasks": info,
        "spaces": {name: {"tasks": tasks, "matrix": np.asarray(m).tolist()} for name, m in spaces.items()},
        "analysis": {},
    }


@pytest.fixture(scope="module")
def planted_results() -> dict:
    space, labels = planted()
    return make_results({"gradsim": space}, labels)


def test_planted_structure_is_recovered(planted_results: dict) -> None:
    out = analyse(load_harness(), planted_results, FAST)
    assert set(out) >= {"hypotheses", "generalisation", "reliability", "clusters"}
    json.dumps(out, allow_nan=False)
    test = out["hypotheses"]["gradsim"]["phenomenon"]
    assert test["r"] > 0.6 and test["p"] < 0.01 and test["n_permutations"] == 499
    assert test["symmetrised"] is False and "upper" not in test
    assert "lexical" not in out["hypotheses"]["gradsim"]  # no task carries a vocabulary
    gen = out["generalisation"]["gradsim"]["phenomenon"]
    assert gen["difference"] == pytest.approx(0.5, abs=0.05) and gen["p"] < 0.01 and gen["ci"][0] > 0
    assert out["reliability"] == {}
    clusters = out["clusters"]["gradsim"]
    for method in ("louvain", "hierarchical"):
        assert clusters["agreement"]["phenomenon"][method]["ari"] >= 0.9
        assert clusters["agreement"]["phenomenon"][method]["ari_p"] < 0.01
    assert clusters["agreement"]["phenomenon"]["hierarchical"]["clusters"] == 4
    assert clusters["n_communities"] == 4 and clusters["modularity"] > 0.3
    assert sorted(clusters["order"]) == sorted(planted_results["tasks"])
    blocks = [planted_results["tasks"][t]["phenomenon"] for t in clusters["order"]]
    assert sum(a != b for a, b in zip(blocks, blocks[1:])) == 3  # leaves come block by block
    assert len(clusters["linkage"]) == 19 and clusters["distance"] == "1 - similarity"


def test_analyse_is_deterministic_and_selects_builders(planted_results: dict) -> None:
    harness = load_harness()
    options = AnalysisOptions(permutations=99, bootstraps=20, builders=["hypotheses", "clusters"])
    first = analyse(harness, planted_results, options)
    assert list(first) == ["hypotheses", "clusters"]
    assert first == analyse(harness, planted_results, options)
    with pytest.raises(UnknownNameError, match="did you mean 'clusters'"):
        analyse(harness, planted_results, AnalysisOptions(builders=["clustrs"]))


def test_asymmetric_space_is_symmetrised_and_each_triangle_tested() -> None:
    space, labels = planted()
    rng = np.random.default_rng(1)
    asym = space + rng.normal(0, 0.2, space.shape)
    out = analyse(
        load_harness(),
        make_results({"transfer": asym}, labels),
        AnalysisOptions(permutations=199, builders=["hypotheses"]),
    )
    test = out["hypotheses"]["transfer"]["phenomenon"]
    assert test["symmetrised"] is True
    assert test["upper"]["p"] < 0.01 and test["lower"]["p"] < 0.01
    assert test["upper"]["r"] != test["lower"]["r"]
    rows, cols = np.triu_indices(20, 1)
    from scipy.stats import spearmanr

    hyp = np.equal.outer(labels, labels)
    assert test["r"] == pytest.approx(spearmanr(((asym + asym.T) / 2)[rows, cols], hyp[rows, cols]).statistic)
    assert test["lower"]["r"] == pytest.approx(spearmanr(asym[cols, rows], hyp[cols, rows]).statistic)


def test_small_spaces_and_constant_hypotheses_do_not_crash() -> None:
    results = make_results({"tiny": [[1.0, 0.2], [0.2, 1.0]]}, ["p0", "p1"])
    results["spaces"]["one_label"] = {"tasks": ["a", "b", "c", "d"], "matrix": np.eye(4).tolist()}
    results["tasks"].update({t: {"phenomenon": "p0", "group": "p0", "field": "f0"} for t in "abcd"})
    out = analyse(load_harness(), results, FAST)
    json.dumps(out, allow_nan=False)
    assert out["hypotheses"]["tiny"]["phenomenon"]["r"] is None
    assert "constant" in out["hypotheses"]["one_label"]["phenomenon"]["reason"]
    assert out["generalisation"]["one_label"]["phenomenon"]["difference"] is None
    assert out["clusters"]["tiny"]["reason"] and out["clusters"]["one_label"]["agreement"] == {}


def test_negative_weights_are_clipped_and_reported() -> None:
    space, labels = planted(between=-0.3)
    out = analyse(
        load_harness(), make_results({"s": space}, labels), AnalysisOptions(permutations=99, builders=["clusters"])
    )["clusters"]["s"]
    rows, cols = np.triu_indices(20, 1)
    negative = space[rows, cols][space[rows, cols] < 0]
    assert out["negative_weights"] == {"policy": "clip", "count": len(negative), "min": pytest.approx(negative.min())}
    assert len(negative) > 100
    assert out["agreement"]["phenomenon"]["louvain"]["ari"] >= 0.9


def test_reliability_only_for_spaces_with_split_halves() -> None:
    space, labels = planted()
    results = make_results({"with": space, "without": space}, labels)
    half = space + np.random.default_rng(0).normal(0, 0.05, space.shape)
    results["spaces"]["with"]["split_half"] = {"a": space.tolist(), "b": half.tolist()}
    out = analyse(load_harness(), results, AnalysisOptions(builders=["reliability"]))["reliability"]
    assert list(out) == ["with"]
    assert 0.5 < out["with"]["r"] < out["with"]["r_full"] < 1
    assert out["with"]["pairs_for_0.8"] is None  # the halves' sizes are not recorded
    results["spaces"]["with"]["split_half"]["n_train"] = [10] * len(space)
    needed = analyse(load_harness(), results, AnalysisOptions(builders=["reliability"]))["reliability"]["with"]
    k, r = needed["pairs_for_0.8"] / 10, needed["r"]  # Spearman-Brown at k halves' worth of pairs reaches 0.8
    assert k * r / (1 + (k - 1) * r) == pytest.approx(0.8)
    results["spaces"]["with"]["split_half"]["b"] = (-half).tolist()
    out = analyse(load_harness(), results, AnalysisOptions(builders=["reliability"]))["reliability"]["with"]
    assert out["r"] < 0 and out["pairs_for_0.8"] is None  # no positive r: no estimate, not 0


def test_builtin_hypotheses_matrices() -> None:
    results = make_results(
        {},
        ["p0", "p0", "p2", "p3"],
        tasks=["a", "b", "c", "d"],
        vocabulary=[["cat", "the"], ["cat", "dog", "the"], ["dog"], ["a"]],
    )
    del results["tasks"]["d"]["vocabulary"]
    del results["tasks"]["d"]["phenomenon"]
    hyps = AnalysisContext(AnalysisOptions(), load_harness()).hypotheses(["a", "b", "c", "d"], results)
    assert set(hyps) == {"phenomenon", "field", "group", "lexical"}
    np.testing.assert_array_equal(hyps["phenomenon"][:3, :3], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert np.isnan(hyps["phenomenon"][3]).all() and np.isnan(hyps["phenomenon"][:, 3]).all()
    np.testing.assert_array_equal(hyps["field"], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_allclose(hyps["lexical"][:3, :3], [[1, 2 / 3, 0], [2 / 3, 1, 1 / 3], [0, 1 / 3, 1]])
    assert np.isnan(hyps["lexical"][3, :3]).all()


def test_lexical_control_runs_when_tasks_carry_vocabularies() -> None:
    space, labels = planted()
    vocab = [[f"w{labels[i]}", f"x{i}"] for i in range(20)]  # shared word within a phenomenon
    out = analyse(
        load_harness(),
        make_results({"s": space}, labels, vocabulary=vocab),
        AnalysisOptions(permutations=199, builders=["hypotheses"]),
    )
    assert out["hypotheses"]["s"]["lexical"]["p"] < 0.01


TASKS = ["t00", "t01", "t02", "t05"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name,text",
    [
        ("m.csv", ",t05,t00,t01\nt00,0.5,1,0.9\nt05,1,0.5,0\nt01,0,0.9,1\n"),
        ("m.json", json.dumps({"tasks": ["t05", "t00", "t01"], "matrix": [[1, 0.5, 0], [0.5, 1, 0.9], [0, 0.9, 1]]})),
    ],
)
def test_matrix_hypothesis_files(tmp_path: Path, name: str, text: str) -> None:
    hyp = hypothesis_from_file(write(tmp_path / name, text))
    assert hyp.name == "m"
    m = hyp.matrix(TASKS, {})
    np.testing.assert_allclose(m[[0, 1, 3]][:, [0, 1, 3]], [[1, 0.9, 0.5], [0.9, 1, 0], [0.5, 0, 1]])
    assert np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()  # t02 is not in the file: left out
    assert hyp.matrix(["t00", "zz"], {}) is None  # fewer than 2 covered tasks: does not apply


@pytest.mark.parametrize(
    "name,text",
    [
        ("g.csv", "task,group\nt00,x\nt01,x\nt02,y\n"),
        ("g.json", json.dumps({"groups": {"t00": "x", "t01": "x", "t02": "y"}})),
    ],
)
def test_grouping_hypothesis_files(tmp_path: Path, name: str, text: str) -> None:
    m = hypothesis_from_file(write(tmp_path / name, text)).matrix(TASKS, {})
    np.testing.assert_array_equal(m[:3, :3], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert np.isnan(m[3]).all()


@pytest.mark.parametrize(
    "name,text,problem",
    [
        ("a.csv", ",t00,t01\nt00,1,x\nt01,0,1\n", "'x' is not a number"),
        ("b.csv", ",t00,t01\nt00,1\nt01,0,1\n", "row 1 (t00) needs 2 values"),
        ("c.csv", ",t00,t01\nt00,1,0\nt09,0,1\n", "same tasks as the header"),
        ("d.csv", "task,group\nt00,x\nt00,y\n", "appears twice"),
        ("e.csv", "", "empty"),
        ("f.json", "{not json", "invalid JSON"),
        ("g.json", json.dumps({"tasks": ["a"]}), "expected"),
        ("h.json", json.dumps({"tasks": ["a", "b"], "matrix": [[1, 0]]}), "needs 2 rows"),
        ("i.json", json.dumps({"groups": {"a": None}}), "has no group"),
        ("j.json", json.dumps({"tasks": ["a", "a"], "matrix": [[1, 0], [0, 1]]}), "named twice"),
        ("k.txt", "t00,x\n", "expected a .csv or .json"),
    ],
)
def test_malformed_hypothesis_files(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        hypothesis_from_file(path)
    message = str(info.value)
    assert str(path) in message and problem in message and "\n" not in message
    with pytest.raises(DataError, match="not found"):
        hypothesis_from_file(tmp_path / "missing.csv")


class FirstLetter:
    name = "thirdparty_first_letter"
    description = "1 for tasks whose names start with the same letter"

    def matrix(self, tasks, results):
        return [[float(a[0] == b[0]) for b in tasks] for a in tasks]


@hookimpl
def lingspace_register_hypotheses(register):
    register(FirstLetter())


def test_third_party_hypothesis_plugin(lingspace_plugin, planted_results: dict) -> None:
    lingspace_plugin(
        types.SimpleNamespace(lingspace_register_hypotheses=lingspace_register_hypotheses), name="firstletter"
    )
    harness = load_harness()
    assert harness.hypotheses.owner("thirdparty_first_letter") == "firstletter"
    results = json.loads(json.dumps(planted_results))
    tasks = list(results["tasks"])
    renamed = {t: ("abcd"[int(results["tasks"][t]["phenomenon"][1])] + t) for t in tasks}
    results["tasks"] = {renamed[t]: v for t, v in results["tasks"].items()}
    results["spaces"]["gradsim"]["tasks"] = [renamed[t] for t in tasks]
    out = analyse(harness, results, AnalysisOptions(permutations=199, builders=["hypotheses"]))
    test = out["hypotheses"]["gradsim"]["thirdparty_first_letter"]
    assert test["r"] == pytest.approx(out["hypotheses"]["gradsim"]["phenomenon"]["r"]) and test["p"] < 0.01


def test_a_hypothesis_returning_the_wrong_shape_is_named(lingspace_plugin, planted_results: dict) -> None:
    class Broken:
        name, description = "broken_shape", "a 2x2 matrix whatever the tasks"

        def matrix(self, tasks, results):
            return np.eye(2)

    class Plugin:
        @hookimpl
        def lingspace_register_hypotheses(self, register):
            register(Broken())

    lingspace_plugin(Plugin(), name="brokenshape")
    with pytest.raises(Exception, match=r"'broken_shape' \(plugin 'brokenshape'\) did not return a 20x20"):
        analyse(load_harness(), planted_results, AnalysisOptions(builders=["hypotheses"]))


def test_analyse_command_end_to_end(tmp_path: Path, planted_results: dict, capsys) -> None:
    results = json.loads(json.dumps(planted_results))
    results["analysis"] = {"earlier_builder": {"kept": True}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    tasks = results["spaces"]["gradsim"]["tasks"]
    hyp = write(tmp_path / "halves.csv", "task,group\n" + "".join(f"{t},{i < 10}\n" for i, t in enumerate(tasks)))
    assert (
        main(
            [
                "analyse",
                str(tmp_path),
                "--permutations",
                "199",
                "--bootstraps",
                "50",
                "--hypothesis",
                str(hyp),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "gradsim" in printed and "phenomenon" in printed and "halves" in printed
    written = json.loads((tmp_path / "results.json").read_text())
    analysis = written["analysis"]
    assert analysis["earlier_builder"] == {"kept": True}
    assert {"hypotheses", "generalisation", "reliability", "clusters"} <= set(analysis)
    assert analysis["hypotheses"]["gradsim"]["halves"]["n_permutations"] == 199
    assert analysis["hypotheses"]["gradsim"]["phenomenon"]["p"] == 1 / 200
    assert written["spaces"] == results["spaces"] and written["tasks"] == results["tasks"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results.json")]  # no temporary left

    assert main(["analyse", str(tmp_path), "--builders", "reliability", "--permutations", "9"]) == 0
    again = json.loads((tmp_path / "results.json").read_text())["analysis"]
    assert again["hypotheses"] == analysis["hypotheses"]  # builders not run are kept


@pytest.mark.parametrize(
    "args,problem",
    [
        (["--builders", "clustrs"], "did you mean 'clusters'"),
        (["--hypothesis", "missing.csv"], "not found"),
        (["--permutations", "0"], "at least 1"),
    ],
)
def test_analyse_command_errors(tmp_path: Path, planted_results: dict, capsys, args: list[str], problem: str) -> None:
    def error_lines() -> list[str]:  # other plugins' warnings may precede the error
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return [line for line in err.splitlines() if line.startswith("error:")]

    assert main(["analyse", str(tmp_path / "nowhere")]) == 2
    [line] = error_lines()
    assert "no results.json in" in line and str(tmp_path / "nowhere") in line
    (tmp_path / "results.json").write_text(json.dumps(planted_results))
    assert main(["analyse", str(tmp_path), *args]) == 2
    [line] = error_lines()
    assert problem in line
    assert json.loads((tmp_path / "results.json").read_text())["analysis"] == {}


def test_bad_spaces_and_clashing_file_names_are_user_errors(tmp_path: Path, planted_results: dict) -> None:
    harness = load_harness()
    broken = json.loads(json.dumps(planted_results))
    broken["spaces"]["gradsim"]["matrix"] = broken["spaces"]["gradsim"]["matrix"][:-1]
    for builder in ("hypotheses", "generalisation", "clusters"):
        with pytest.raises(DataError, match="gradsim|20 tasks"):
            analyse(harness, broken, AnalysisOptions(builders=[builder]))
    clash = write(tmp_path / "phenomenon.csv", "task,group\nt00,x\nt01,y\n")
    with pytest.raises(UserError, match="'phenomenon' is taken; rename the file"):
        analyse(harness, planted_results, AnalysisOptions(hypothesis_files=[clash]))


def test_modularity_is_networkx_value_summed_in_task_order() -> None:
    """The same value as networkx's modularity, but the same bits whatever order the hash of the
    task names puts them in (networkx sums over sets of names)."""
    import networkx as nx
    from lingspace_harness_plugins.clustering import graph_of, modularity

    rng = np.random.default_rng(5)
    tasks = [f"task_{i}" for i in range(9)]
    sim = rng.uniform(-0.2, 1, (9, 9))
    graph, _ = graph_of(tasks, (sim + sim.T) / 2)
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    communities = [{t for t, c in zip(tasks, labels) if c == k} for k in range(3)]
    expected = nx.community.modularity(graph, communities, weight="weight")
    assert modularity(graph, tasks, labels) == pytest.approx(expected, rel=1e-12)
    shuffled = [tasks[i] for i in rng.permutation(9)]
    reordered, _ = graph_of(
        shuffled, np.array([[((sim + sim.T) / 2)[tasks.index(a), tasks.index(b)] for b in shuffled] for a in shuffled])
    )
    assert modularity(reordered, tasks, labels) == modularity(graph, tasks, labels)  # bit for bit
