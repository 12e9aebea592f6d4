"""The run analysis's controls and family: the ``lexical-tokens`` control (the model's own
tokens), partial Mantel tests of a label given the labels nested in it, the nesting record,
and Holm-adjusted p-values over a run's tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_analysis import make_results
from test_stats import planted

from lingspace_harness import AnalysisContext, AnalysisOptions, MinimalPair, load_harness
from lingspace_harness.analysis import analyse
from lingspace_harness.lexicon import token_types
from lingspace_harness.stats import holm, partial_mantel
from lingspace_harness.tiny import build_tokenizer


def test_token_types_are_the_models_own_ids() -> None:
    tokenizer = build_tokenizer()
    pairs = [MinimalPair(good="The cat sleeps.", bad="The cat sleep.", pair_id=1)]
    ids = token_types(tokenizer, pairs)
    expected = {t for text in (" The cat sleeps.", " The cat sleep.") for t in tokenizer(text)["input_ids"]}
    assert ids == sorted(expected) and all(isinstance(i, int) for i in ids)
    assert token_types(None, pairs) is None and token_types(tokenizer, []) == []


def test_lexical_tokens_control_beside_word_types() -> None:
    results = make_results({}, ["p0", "p0", "p2"], tasks=["a", "b", "c"], vocabulary=[["x"], ["x"], ["y"]])
    for task, ids in zip("abc", ([1, 2, 3], [2, 3, 4], [9])):
        results["tasks"][task]["token_types"] = ids
    hyps = AnalysisContext(AnalysisOptions(), load_harness()).hypotheses(["a", "b", "c"], results)
    assert {"lexical", "lexical-tokens"} <= set(hyps)
    np.testing.assert_allclose(hyps["lexical-tokens"], [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    del results["tasks"]["c"]["token_types"]  # an unknown token set is missing, not 0
    hyps = AnalysisContext(AnalysisOptions(), load_harness()).hypotheses(["a", "b", "c"], results)
    assert np.isnan(hyps["lexical-tokens"][2, :2]).all()


@pytest.fixture(scope="module")
def analysed() -> tuple[dict, dict]:
    space, labels = planted(seed=2)
    vocab = [[f"w{labels[i]}", f"x{i}"] for i in range(20)]  # word types: the phenomenon's ranks exactly
    results = make_results({"s": space}, labels, vocabulary=vocab)
    rng = np.random.default_rng(0)
    for i, task in enumerate(results["tasks"]):  # a phenomenon's token, the task's own, and some shared
        results["tasks"][task]["token_types"] = sorted({int(labels[i][1:]), 100 + i, *rng.integers(10, 16, 3).tolist()})
    options = AnalysisOptions(permutations=199, builders=["hypotheses", "nesting"])
    return results, analyse(load_harness(), results, options)


def test_partial_tests_given_controls_and_nested_labels(analysed: tuple[dict, dict]) -> None:
    results, out = analysed
    tests = out["hypotheses"]["s"]
    # phenomenon = group here, and both nest in field: field is tested beyond phenomenon (once)
    assert set(tests["field"]["partial"]) == {"lexical-tokens", "lexical", "phenomenon"}
    assert set(tests["phenomenon"]["partial"]) == {"lexical-tokens", "lexical"}
    assert "partial" not in tests["lexical"] and "partial" not in tests["lexical-tokens"]
    hyps = AnalysisContext(AnalysisOptions(), load_harness()).hypotheses(results["spaces"]["s"]["tasks"], results)
    expected = partial_mantel(
        np.array(results["spaces"]["s"]["matrix"]), hyps["field"], hyps["phenomenon"], permutations=199
    )
    given = tests["field"]["partial"]["phenomenon"]
    assert given["r"] == pytest.approx(expected["r"]) and given["p"] == expected["p"]
    assert given["permutation"] == "freedman-lane"
    # the planted space follows phenomenon only: field's plain r is large, nothing beyond phenomenon
    assert tests["field"]["p"] <= 0.01 and given["p"] > 0.05


def test_holm_over_the_runs_family(analysed: tuple[dict, dict]) -> None:
    _, out = analysed
    family = []
    for test in out["hypotheses"]["s"].values():
        family += [test, *test.get("partial", {}).values()]
    adjusted = holm([t["p"] for t in family])
    assert [t["p_holm"] for t in family] == adjusted
    # word types determine phenomenon's (and group's) ranks: those partial tests are undefined,
    # stay None and are left out of the family
    undefined = [t for t in family if t["p"] is None]
    assert len(undefined) == 2 and all(t["p_holm"] is None and t["reason"] for t in undefined)
    assert all(t["holm_family"] == len(family) - 2 for t in family)
    assert all(t["p_holm"] >= t["p"] for t in family if t["p"] is not None)
    json.dumps(out, allow_nan=False)


def test_nesting_is_derived_from_the_labels(analysed: tuple[dict, dict]) -> None:
    _, out = analysed
    nest = out["nesting"]
    assert nest["labels"] == ["phenomenon", "field", "group"]
    assert {"lower": "phenomenon", "higher": "field"} in nest["nested"]
    assert {"lower": "group", "higher": "field"} in nest["nested"]
    assert nest["duplicates"] == [["phenomenon", "group"]]
    pair = next(p for p in nest["pairs"] if p["labels"] == ["phenomenon", "field"])
    # 4 phenomena of 5 tasks (40 same-phenomenon pairs) in 2 fields of 10 (90 same-field pairs)
    assert pair["same"] == [40, 90] and pair["jaccard"] == pytest.approx(40 / 90) and pair["n_pairs"] == 190
    assert pair["first_in_second"] and not pair["second_in_first"]
    assert nest["near_duplicates"] == []  # 0.44 < 0.8; an exact duplicate is listed apart
