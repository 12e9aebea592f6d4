"""lingspace_harness.stats: Mantel tests, within/between contrasts, reliability, cluster agreement."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as ss

from lingspace_harness import UserError
from lingspace_harness.agreement import cluster_agreement
from lingspace_harness.stats import is_symmetric, mantel, split_half_reliability, symmetrise, within_between


def planted(
    seed: int = 0, groups: int = 4, size: int = 5, within: float = 0.6, between: float = 0.1, noise: float = 0.1
) -> tuple[np.ndarray, list[str]]:
    """A symmetric space with ``groups`` blocks of ``size`` tasks, and the tasks' labels."""
    labels = [f"p{g}" for g in range(groups) for _ in range(size)]
    same = np.equal.outer(labels, labels)
    rng = np.random.default_rng(seed)
    e = rng.normal(0, noise, same.shape)
    m = np.where(same, within, between) + (e + e.T) / 2
    np.fill_diagonal(m, 1.0)
    return m, labels


def same_label(labels: list) -> np.ndarray:
    return np.equal.outer(labels, labels).astype(float)


def test_mantel_recovers_planted_blocks() -> None:
    space, labels = planted()
    result = mantel(space, same_label(labels), permutations=2000, seed=1)
    assert result["r"] > 0.6 and result["p"] < 0.01
    assert result["p"] == 1 / 2001  # no permutation reaches a planted structure
    assert result["n_permutations"] == 2000 and result["n_tasks"] == 20


def test_mantel_r_is_spearman_over_the_chosen_triangle() -> None:
    rng = np.random.default_rng(3)
    a, h = rng.normal(size=(9, 9)), rng.normal(size=(9, 9))
    for triangle, (rows, cols) in (("upper", np.triu_indices(9, 1)), ("lower", np.tril_indices(9, -1))):
        got = mantel(a, h, permutations=10, triangle=triangle)["r"]
        assert got == pytest.approx(ss.spearmanr(a[rows, cols], h[rows, cols]).statistic, abs=1e-12)


def exact_p(a: np.ndarray, h: np.ndarray, triangle: str = "upper") -> float:
    """Exact one-sided p over all n! relabellings of the hypothesis, missing entries left out."""
    n = len(a)
    rows, cols = np.triu_indices(n, 1) if triangle == "upper" else np.tril_indices(n, -1)

    def r(hp: np.ndarray) -> float:
        x, y = a[rows, cols], hp[rows, cols]
        ok = ~np.isnan(x) & ~np.isnan(y)
        return ss.spearmanr(x[ok], y[ok]).statistic

    observed = r(h)
    null = [r(h[np.ix_(p, p)]) for p in map(list, itertools.permutations(range(n)))]
    return float(np.mean([v >= observed - 1e-10 for v in null]))


@pytest.mark.parametrize("case", ["symmetric", "asymmetric-lower", "missing-entries"])
def test_mantel_p_matches_the_exact_permutation_distribution(case: str) -> None:
    rng = np.random.default_rng(7)
    n = 6
    a = rng.normal(size=(n, n))
    h = rng.normal(size=(n, n))
    h = (h + h.T) / 2
    triangle = "upper"
    if case == "symmetric":
        a = (a + a.T) / 2
    elif case == "asymmetric-lower":
        triangle = "lower"
    else:
        h[0, 3] = np.nan  # an asymmetric gap: the permuted matrix's missing entry moves around
    a = a + 0.8 * np.nan_to_num(h)  # some signal, so p is not near 1
    expected = exact_p(a, h, triangle)
    got = mantel(a, h, permutations=20000, seed=5, triangle=triangle)["p"]
    assert 0.001 < expected < 0.5
    assert got == pytest.approx(expected, abs=0.015)  # 20000 draws: standard error below 0.0036


@pytest.mark.parametrize("kind", ["complete", "missing-entries"])
def test_mantel_p_values_are_uniform_without_structure(kind: str) -> None:
    _, labels = planted()
    hyp = same_label(labels)
    if kind == "missing-entries":
        hyp[1, 7] = np.nan
    ps = []
    for seed in range(150):
        e = np.random.default_rng(1000 + seed).normal(size=hyp.shape)
        ps.append(mantel((e + e.T) / 2, hyp, permutations=199, seed=seed)["p"])
    assert ss.kstest(ps, "uniform").pvalue > 0.01
    assert 0.4 < np.mean(ps) < 0.6


def test_within_between_p_values_are_uniform_without_structure() -> None:
    _, labels = planted()
    ps = []
    for seed in range(150):
        e = np.random.default_rng(2000 + seed).normal(size=(20, 20))
        ps.append(within_between((e + e.T) / 2, labels, permutations=199, bootstraps=0, seed=seed)["p"])
    assert ss.kstest(ps, "uniform").pvalue > 0.01


def test_missing_tasks_and_entries_are_left_out_consistently() -> None:
    space, labels = planted()
    hyp = same_label(labels)
    with_gap = space.astype(object)
    with_gap[4, :] = None  # task 4 has no entries at all
    with_gap[:, 4] = None
    keep = [i for i in range(20) if i != 4]
    full = mantel(with_gap, hyp, permutations=500, seed=2)
    counts = ("n_undefined", "n_left_out")
    reduced = mantel(space[np.ix_(keep, keep)], hyp[np.ix_(keep, keep)], permutations=500, seed=2)
    assert {k: v for k, v in full.items() if k not in counts} == {k: v for k, v in reduced.items() if k not in counts}
    assert full["n_tasks"] == 19 and full["n_undefined"] == full["n_left_out"] == 19 and full["n_pairs"] == 171
    one_gap = space.copy()
    one_gap[0, 1] = one_gap[1, 0] = np.nan
    rows, cols = np.triu_indices(20, 1)
    ok = ~((rows == 0) & (cols == 1))
    gap = mantel(one_gap, hyp, permutations=10)
    assert gap["r"] == pytest.approx(ss.spearmanr(space[rows, cols][ok], hyp[rows, cols][ok]).statistic)
    assert gap["n_undefined"] == 1 and gap["n_pairs"] == 189


def test_degenerate_inputs_give_a_reason_not_nan() -> None:
    small = mantel([[1, 0.5], [0.5, 1]], [[1, 0], [0, 1]])
    assert small["r"] is None and small["p"] is None and "3" in small["reason"]
    space, _ = planted()
    flat = mantel(space, np.zeros((20, 20)))
    assert flat["r"] is None and "hypothesis is constant" in flat["reason"]
    wb = within_between(space, [f"t{i}" for i in range(20)])  # every task its own label
    assert wb["difference"] is None and wb["reason"]
    json.dumps([small, flat, wb], allow_nan=False)


def test_user_mistakes_raise_user_errors() -> None:
    with pytest.raises(UserError, match="triangle"):
        mantel(np.eye(3), np.eye(3), triangle="both")
    with pytest.raises(UserError, match="shape"):
        mantel(np.eye(3), np.eye(4))
    with pytest.raises(UserError, match="square"):
        mantel(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(UserError, match="labels"):
        within_between(np.eye(3), ["a", "b"])
    with pytest.raises(UserError, match="predicted"):
        cluster_agreement([1, 2, 3], [1, 2])
    with pytest.raises(UserError, match="permutations must be at least 1"):
        within_between(np.eye(3), ["a", "a", "b"], permutations=0)


def test_seeded_determinism() -> None:
    space, labels = planted(noise=1.0)
    hyp = same_label(labels)
    assert mantel(space, hyp, permutations=300, seed=4) == mantel(space, hyp, permutations=300, seed=4)
    assert within_between(space, labels, seed=4) == within_between(space, labels, seed=4)


def test_symmetrise_and_is_symmetric() -> None:
    m = np.array([[1.0, 2.0], [4.0, 1.0]])
    assert not is_symmetric(m)
    assert symmetrise(m).tolist() == [[1.0, 3.0], [3.0, 1.0]]
    assert is_symmetric(symmetrise(m))
    assert is_symmetric([[1.0, None], [None, 1.0]]) and not is_symmetric([[1.0, None], [0.0, 1.0]])


def test_within_between_values_by_hand_and_planted() -> None:
    m = np.array([[1, 0.8, 0.1, 0.2], [0.6, 1, 0.3, 0.0], [0.1, 0.3, 1, 0.9], [0.2, 0.0, 0.5, 1]])
    result = within_between(m, ["a", "a", "b", "b"], permutations=100, bootstraps=100)
    assert result["within"] == pytest.approx((0.8 + 0.6 + 0.9 + 0.5) / 4)
    assert result["between"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.0) * 2 / 8)
    assert result["difference"] == pytest.approx(result["within"] - result["between"])
    assert within_between(symmetrise(m), ["a", "a", "b", "b"], permutations=100, bootstraps=100)[
        "within"
    ] == pytest.approx(result["within"])

    space, labels = planted()
    planted_result = within_between(space, labels, permutations=2000, bootstraps=500)
    assert planted_result["difference"] == pytest.approx(0.5, abs=0.05)
    assert planted_result["p"] < 0.01
    lo, hi = planted_result["ci"]
    assert 0 < lo < 0.5 < hi


def test_within_between_leaves_out_unlabelled_tasks() -> None:
    space, labels = planted()
    labels = list(labels)
    labels[3] = None
    keep = [i for i in range(20) if i != 3]
    got = within_between(space, labels, permutations=300, bootstraps=50, seed=9)
    want = within_between(space[np.ix_(keep, keep)], [labels[i] for i in keep], permutations=300, bootstraps=50, seed=9)
    assert got == want and got["n_tasks"] == 19 and got["n_labels"] == 4


def test_within_between_p_matches_exact_label_permutations() -> None:
    rng = np.random.default_rng(11)
    labels = ["a", "a", "a", "b", "b", "c", "c"]
    e = rng.normal(size=(7, 7))
    m = 0.7 * same_label(labels) + e

    def diff(lab: list[str]) -> float:
        s = same_label(lab).astype(bool)
        off = ~np.eye(7, dtype=bool)
        return m[s & off].mean() - m[~s].mean()

    observed = diff(labels)
    exact = np.mean([diff([labels[i] for i in p]) >= observed - 1e-10 for p in itertools.permutations(range(7))])
    got = within_between(m, labels, permutations=20000, bootstraps=0, seed=1)
    assert got["difference"] == pytest.approx(observed)
    assert got["p"] == pytest.approx(exact, abs=0.015)
    assert got["ci"] is None


def test_split_half_reliability() -> None:
    space, _ = planted()
    same = split_half_reliability(space, np.exp(space))  # a monotone transform: the same ranks
    assert same["r"] == pytest.approx(1.0) and same["r_full"] == pytest.approx(1.0)
    assert same["n_pairs"] == 190
    noisy = split_half_reliability(space, space + np.random.default_rng(0).normal(0, 0.3, space.shape))
    assert 0 < noisy["r"] < noisy["r_full"] < 1
    assert noisy["r_full"] == pytest.approx(2 * noisy["r"] / (1 + noisy["r"]))
    assert noisy["n_pairs"] == 380  # the noisy half is asymmetric: all off-diagonal entries
    negative = split_half_reliability(space, -space)
    assert negative["r"] == pytest.approx(-1.0) and negative["r_full"] is None and negative["reason"]


def test_ari_and_nmi_hand_computed() -> None:
    # contingency [[2,0,0],[0,1,1]]: index 1, rows 2, cols 1, pairs 6 -> (1 - 1/3) / (3/2 - 1/3) = 4/7;
    # pred determines truth, so MI = H(true) = ln 2, H(pred) = 1.5 ln 2 -> NMI = 1 / 1.25
    small = cluster_agreement([0, 0, 1, 1], ["x", "x", "y", "z"], permutations=50)
    assert small["ari"] == pytest.approx(4 / 7) and small["nmi"] == pytest.approx(0.8)
    # contingency [[2,1,0],[0,1,2]]: index 2, rows 6, cols 3, pairs 15 -> (2 - 1.2) / (4.5 - 1.2) = 8/33;
    # MI = 2 * (1/3) ln 2, entropies ln 2 and ln 3 -> NMI = (2/3 ln 2) / (ln 6 / 2)
    six = cluster_agreement([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], permutations=50)
    assert six["ari"] == pytest.approx(8 / 33)
    assert six["nmi"] == pytest.approx((2 / 3) * math.log(2) / (math.log(6) / 2))
    trivial = cluster_agreement(["a"] * 5, [7] * 5, permutations=20)
    assert trivial["ari"] == 1.0 and trivial["nmi"] == 1.0


def pair_counting_ari(a: list, b: list) -> float:
    """Hubert and Arabie's ARI from the 2 x 2 pair confusion counts (an independent formula)."""
    n11 = n10 = n01 = n00 = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        same_a, same_b = a[i] == a[j], b[i] == b[j]
        n11 += same_a and same_b
        n10 += same_a and not same_b
        n01 += same_b and not same_a
        n00 += not same_a and not same_b
    return 2 * (n11 * n00 - n10 * n01) / ((n11 + n10) * (n10 + n00) + (n11 + n01) * (n01 + n00))


def test_ari_matches_pair_counting_and_perfect_agreement_is_significant() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = list(rng.integers(0, 4, 15)), list(rng.integers(0, 3, 15))
        assert cluster_agreement(a, b, permutations=10)["ari"] == pytest.approx(pair_counting_ari(a, b))
    _, labels = planted()
    renamed = [{"p0": 3, "p1": 0, "p2": 2, "p3": 1}[v] for v in labels]
    perfect = cluster_agreement(labels, renamed, permutations=999, seed=2)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["nmi"] == pytest.approx(1.0)
    assert perfect["ari_p"] == perfect["nmi_p"] == 1 / 1000
    shuffled = cluster_agreement(labels, list(rng.permutation(renamed)), permutations=999, seed=2)
    assert shuffled["ari"] < 0.5 and shuffled["ari_p"] > 0.01
