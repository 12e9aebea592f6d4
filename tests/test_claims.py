"""Claims over ordered runs (plugins/claims.py), ``compare --order-by``, and partial Mantel tests."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from lingspace_harness_plugins import claims as cl
from scipy.stats import kstest, spearmanr

from lingspace_harness import AnalysisContext, AnalysisOptions, load_harness
from lingspace_harness.analysis import analyse
from lingspace_harness.cli import main
from lingspace_harness.stats import mantel, partial_mantel

N = 12
TASKS = [f"blimp_t{i:02d}" for i in range(N)]
PHENOMENA = [f"p{i % 4}" for i in range(N)]
SAME = np.array([[a == b for b in PHENOMENA] for a in PHENOMENA], dtype=float)


def sym(rng: np.random.Generator, n: int = N) -> np.ndarray:
    m = rng.normal(size=(n, n))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return m


def results(
    spaces: dict[str, np.ndarray],
    revision: str | None = None,
    n_params: int | None = None,
    vocabulary: bool = False,
    k: float = 0.05,
) -> dict:
    tasks = {
        t: {"phenomenon": p, "group": p, "field": "syntax" if i < N // 2 else "semantics", "accuracy": 0.7}
        for i, (t, p) in enumerate(zip(TASKS, PHENOMENA))
    }
    if vocabulary:  # a word shared within each phenomenon, and one task-specific word
        for i, t in enumerate(TASKS):
            tasks[t]["vocabulary"] = [f"w{PHENOMENA[i]}", f"x{i}", f"y{i // 2}"]
    return {
        "version": 1,
        "config": {"model": "m", "revision": revision},
        "model": {"name": "m", "n_params": n_params},
        "tasks": tasks,
        "spaces": {
            name: {
                "tasks": TASKS,
                "matrix": np.where(np.isnan(m), None, m).tolist(),
                **({"k": k} if name == "overlap" else {}),
            }
            for name, m in spaces.items()
        },
        "analysis": {},
    }


def planted_series(seed: int, runs: int = 7, slope: float = 0.5) -> list[np.ndarray]:
    """Spaces whose within-phenomenon similarity grows with the run index."""
    rng = np.random.default_rng(seed)
    return [slope * i * SAME + sym(rng) for i in range(runs)]


def options(**kw) -> cl.ClaimOptions:
    return cl.ClaimOptions(**{"permutations": 99, "bootstraps": 50, "seed": 0, **kw})


@functools.cache
def harness():
    return load_harness()


def claim_set(series: list[np.ndarray], o: cl.ClaimOptions, name: str = "gradsim", **kw) -> list[dict]:
    runs = [results({name: m}, **kw) for m in series]
    labels = [f"r{i}" for i in range(len(series))]
    out = cl.claims(harness(), runs, labels, {name: [(m + m.T) / 2 for m in series]}, {name: TASKS}, o)
    return out["claims"]


def find(claims: list[dict], claim: str, hypothesis: str | None = None) -> dict:
    return next(c for c in claims if c["claim"] == claim and c.get("hypothesis") == hypothesis)


def write_runs(tmp_path: Path, series: list[dict]) -> list[str]:
    dirs = []
    for i, r in enumerate(series):
        (tmp_path / f"run{i}").mkdir()
        (tmp_path / f"run{i}" / "results.json").write_text(json.dumps(r))
        dirs.append(str(tmp_path / f"run{i}"))
    return dirs


# -- trends --------------------------------------------------------------------------------


def test_planted_trend_is_found_and_supported() -> None:
    series = planted_series(1)
    claims = claim_set(series, options(permutations=5040))  # 7! orders: the exact test
    claim = find(claims, "generalisation", "phenomenon")
    for name in ("mantel_r", "difference"):
        trend = claim["statistics"][name]["trend"]
        assert trend["exact"] and trend["rho"] > 0.8 and trend["p_increase"] < 0.01, (name, trend)
    assert claim["verdict"] == "supported"
    r = [mantel((m + m.T) / 2, SAME, permutations=9)["r"] for m in series]
    assert claim["statistics"]["mantel_r"]["values"] == pytest.approx(r)
    assert [t["r"] for t in claim["tests"]] == pytest.approx(r)
    first_last = claim["statistics"]["mantel_r"]["steps"][-1]
    assert (first_last["a"], first_last["b"]) == ("r0", "r6") and first_last["ci"][0] > 0
    assert first_last["difference"] == pytest.approx(r[-1] - r[0])
    # the same series backwards contradicts the claim
    assert (
        find(claim_set(series[::-1], options(permutations=5040)), "generalisation", "phenomenon")["verdict"]
        == "contradicted"
    )


def test_shuffled_series_give_uniform_p_values() -> None:
    p = []
    base = {"space": "s", "runs": [f"r{i}" for i in range(8)]}
    for seed in range(120):
        series = planted_series(seed, runs=8, slope=0.3)
        order = np.random.default_rng(1000 + seed).permutation(len(series))
        o = options(permutations=99, bootstraps=2, seed=seed)
        claim = cl.generalisation(
            base, "phenomenon", [series[i] for i in order], [{"phenomenon": SAME}] * 8, cl.resamples(N, 2, seed), o
        )
        p.append(claim["statistics"]["mantel_r"]["trend"]["p_increase"])
    assert kstest(p, "uniform").pvalue > 0.01
    assert np.mean(np.array(p) < 0.05) < 0.12


def test_bootstrap_resamples_the_shared_tasks_alike_for_both_runs() -> None:
    rng = np.random.default_rng(3)
    a, b = sym(rng), sym(rng)
    idx = cl.resamples(N, 20, seed=5)
    assert (idx[0] == np.arange(N)).all() and idx.shape == (21, N)
    values = np.array([cl.per_resample(cl.mean_entry(m), idx) for m in (a, b)])
    k = 7
    drawn = idx[k]
    pairs = [(drawn[i], drawn[j]) for i in range(N) for j in range(i + 1, N) if drawn[i] != drawn[j]]
    assert values[1, k] - values[0, k] == pytest.approx(np.mean([b[i, j] - a[i, j] for i, j in pairs]))
    step = cl.steps(["a", "b"], values)[0]
    assert step["ci"] == pytest.approx(list(np.percentile(values[1, 1:] - values[0, 1:], [2.5, 97.5])))


def test_sharing_trend_and_excess_over_chance() -> None:
    rng = np.random.default_rng(4)
    series = [np.clip(0.05 + 0.02 * i + 0.01 * np.abs(sym(rng)), 0, 1) for i in range(5)]
    for m in series:
        np.fill_diagonal(m, 1.0)
    claim = find(claim_set(series, options(permutations=120), name="overlap", k=0.1), "sharing")
    means = [m[np.triu_indices(N, 1)].mean() for m in series]
    assert claim["statistics"]["mean_overlap"]["values"] == pytest.approx(means)
    assert claim["statistics"]["excess"]["values"] == pytest.approx([v - 0.1 / 1.9 for v in means])
    assert claim["statistics"]["excess"]["trend"]["p_increase"] == pytest.approx(1 / 120)
    assert claim["verdict"] == "supported"


# -- stability -----------------------------------------------------------------------------


def test_change_point_is_an_incisive_stage_and_a_smooth_series_is_not() -> None:
    rng = np.random.default_rng(5)
    a, b = sym(rng), sym(rng)
    jump = [(a if i < 3 else b) + 0.3 * sym(rng) for i in range(6)]
    claim = find(claim_set(jump, options(bootstraps=200)), "stability")
    assert claim["incisive"] == ["r2 -> r3"] and claim["verdict"] == "contradicted"
    assert [s["incisive"] for s in claim["steps"]] == [False, False, True, False, False]
    assert claim["steps"][2]["outside"] == "below" and claim["steps"][2]["spearman"] < claim["steps"][2]["others"][0]
    angles = np.linspace(0, np.pi / 2, 6)
    smooth = [np.cos(t) * a + np.sin(t) * b + 0.1 * sym(rng) for t in angles]
    claim = find(claim_set(smooth, options(bootstraps=200)), "stability")
    assert claim["incisive"] == [] and claim["verdict"] == "supported"
    assert all(s["p"] < 0.05 and s["others"][0] <= s["spearman"] for s in claim["steps"])


# -- verdicts ------------------------------------------------------------------------------


def _stat(p_up: float | None, p_down: float | None, ci: list[float] | None = None, n: int = 5) -> dict:
    rho = None if p_up is None else 0.5
    return {"trend": {"rho": rho, "p_increase": p_up, "p_decrease": p_down, "n_runs": n}, "slope": {"ci": ci}}


UP, DOWN, FLAT = [0.1, 0.3], [-0.3, -0.1], [-0.1, 0.3]


@pytest.mark.parametrize(
    "stats, expected",
    [
        ([_stat(0.01, 0.99, UP), _stat(0.04, 0.97, UP)], "supported"),
        # the order test alone no longer decides (issue 32): the slope's interval must agree
        ([_stat(0.01, 0.99, FLAT), _stat(0.04, 0.97, UP)], "inconclusive"),
        ([_stat(0.04, 0.97, FLAT)], "inconclusive"),
        ([_stat(0.2, 0.8, UP)], "inconclusive"),  # nor does the interval without the order test
        ([_stat(0.01, 0.99, UP), _stat(0.2, 0.8, UP)], "inconclusive"),
        ([_stat(0.99, 0.01, DOWN), _stat(0.97, 0.03, DOWN)], "contradicted"),
        ([_stat(0.01, 0.99, UP), _stat(0.99, 0.01, DOWN)], "inconclusive"),
        ([_stat(0.05, 0.95, UP)], "inconclusive"),  # p must be below alpha
        ([_stat(None, None, UP, n=3)], "supported"),  # too few runs: first-to-last interval
        ([_stat(None, None, DOWN, n=3)], "contradicted"),
        ([_stat(None, None, FLAT, n=3)], "inconclusive"),
        ([_stat(None, None, None, n=5)], "inconclusive"),
    ],
)
def test_verdicts_follow_the_numbers(stats: list[dict], expected: str) -> None:
    assert cl.verdict([cl.direction(s, 0.05)[0] for s in stats]) == expected
    decided = {cl.direction(s, 0.05)[1] for s in stats}
    assert decided <= {"order test and slope interval", "first-to-last interval", None}


# -- partial Mantel ------------------------------------------------------------------------


def _partial_by_hand(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    ok = ~np.isnan(x) & ~np.isnan(y) & ~np.isnan(z)
    rxy, rxz, ryz = (spearmanr(u[ok], v[ok]).statistic for u, v in ((x, y), (x, z), (y, z)))
    return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


@pytest.mark.parametrize("hole", [None, "control", "space"])
def test_partial_mantel_matches_the_exact_permutation_distribution(hole: str | None) -> None:
    rng = np.random.default_rng(6)
    n = 5
    space, hyp, control = sym(rng, n), sym(rng, n), sym(rng, n)
    hyp += 0.8 * space
    if hole:  # a missing cell takes the general path; one in the space moves with the permutation
        (control if hole == "control" else space)[0, 3] = np.nan
        (control if hole == "control" else space)[3, 0] = np.nan
    iu = np.triu_indices(n, 1)
    observed = _partial_by_hand(space[iu], hyp[iu], control[iu])
    null = [_partial_by_hand(space[np.ix_(p, p)][iu], hyp[iu], control[iu]) for p in itertools.permutations(range(n))]
    exact = np.mean(np.array(null) >= observed - 1e-10)
    test = partial_mantel(space, hyp, control, permutations=20000, seed=1)
    assert test["r"] == pytest.approx(observed, abs=1e-12)
    assert test["p"] == pytest.approx(exact, abs=0.01) and test["n_pairs"] == (9 if hole else 10)


def test_partial_mantel_removes_a_planted_confound() -> None:
    rng = np.random.default_rng(7)
    lexical = np.abs(sym(rng, 25))
    space = lexical + 0.3 * sym(rng, 25)
    hypothesis = lexical + 0.3 * sym(rng, 25)  # related to the space only through the control
    assert mantel(space, hypothesis, permutations=999)["p"] < 0.01
    partial = partial_mantel(space, hypothesis, lexical, permutations=999)
    assert partial["p"] > 0.05 and abs(partial["r"]) < 0.15
    assert partial_mantel(space, lexical, hypothesis, permutations=999)["p"] < 0.01
    constant = partial_mantel(space, hypothesis, np.ones((25, 25)), permutations=9)
    assert constant["r"] is None and "constant" in constant["reason"]


def test_partial_mantel_beside_mantel_in_claims_and_analysis() -> None:
    series = planted_series(8, runs=4)
    claim = find(claim_set(series, options(), vocabulary=True), "generalisation", "phenomenon")
    lexical = AnalysisContext(AnalysisOptions(), harness()).hypotheses(TASKS, results({}, vocabulary=True))["lexical"]
    expected = partial_mantel((series[2] + series[2].T) / 2, SAME, lexical, permutations=99)
    assert claim["tests"][2]["partial"]["lexical"]["r"] == pytest.approx(expected["r"])
    assert claim["tests"][2]["partial"]["lexical"]["p"] == pytest.approx(expected["p"])
    assert len(claim["controls"]["lexical"]["values"]) == 4
    # the controlled statistic is the partial Mantel r itself, bootstrapped like the others
    assert claim["controls"]["lexical"]["values"][2] == pytest.approx(expected["r"], abs=1e-9)
    two = find(claim_set(planted_series(8, runs=2), options(), vocabulary=True), "generalisation", "phenomenon")
    control = two["controls"]["lexical"]
    assert control["steps"][-1]["ci"] is not None and control["direction"] is not None
    out = analyse(
        harness(), results({"s": series[2]}, vocabulary=True), AnalysisOptions(permutations=99, builders=["hypotheses"])
    )["hypotheses"]["s"]
    assert out["phenomenon"]["partial"]["lexical"]["r"] == pytest.approx(expected["r"])
    assert "partial" not in out["lexical"]
    plain = analyse(harness(), results({"s": series[2]}), AnalysisOptions(permutations=9, builders=["hypotheses"]))
    assert "partial" not in plain["hypotheses"]["s"]["phenomenon"]


# -- compare: order, undefined cells, report -----------------------------------------------


def test_compare_orders_by_steps_and_params_and_counts_undefined_cells(tmp_path: Path, capsys) -> None:
    series = planted_series(9, runs=4)
    series[1][0, 5] = series[1][5, 0] = np.nan
    given = [3, 0, 2, 1]
    runs = [results({"gradsim": series[i]}, revision=f"step{1000 * (i + 1)}", n_params=10 * (4 - i)) for i in given]
    dirs = write_runs(tmp_path, runs)
    out = tmp_path / "out"
    argv = ["compare", *dirs, "--permutations", "99", "--bootstraps", "30"]
    assert main([*argv, "--order-by", "steps", "--output", str(out)]) == 0
    printed = capsys.readouterr()
    comparison = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in comparison["runs"]] == ["step1000", "step2000", "step3000", "step4000"]
    claim = find(comparison["claims"]["claims"], "generalisation", "phenomenon")
    assert claim["missing"] == {"step1000": 0, "step2000": 1, "step3000": 0, "step4000": 0}
    assert "undefined cells left out (step2000: 1)" in printed.err
    nan_free = mantel((series[1] + series[1].T) / 2, SAME, permutations=9)["r"]
    assert claim["statistics"]["mantel_r"]["values"][1] == pytest.approx(nan_free)
    assert printed.out.splitlines()[0].split()[:4] == ["claim", "space", "hypothesis", "statistic"]
    assert main([*argv, "--order-by", "params", "--output", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in comparison["runs"]] == ["step4000", "step3000", "step2000", "step1000"]
    assert comparison["options"]["order_by"] == "params"

    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "claims (alpha = 0.05" in page and page.index("claims (alpha") < page.index("<figure")


@pytest.mark.parametrize(
    "flag, message",
    [
        ("steps", "has no step<N> in its revision"),
        ("params", "has no model.n_params"),
        ("control", "unknown control hypothesis nothere"),
    ],
)
def test_order_and_control_errors_are_one_line(tmp_path: Path, capsys, flag: str, message: str) -> None:
    dirs = write_runs(tmp_path, [results({"gradsim": m}, revision="main") for m in planted_series(10, runs=2)])
    extra = ["--control", "nothere"] if flag == "control" else ["--order-by", flag]
    assert main(["compare", *dirs, *extra, "--permutations", "9", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_user_hypotheses_get_claims_and_can_be_controls(tmp_path: Path, capsys) -> None:
    dirs = write_runs(tmp_path, [results({"gradsim": m}) for m in planted_series(11, runs=3)])
    halves = tmp_path / "halves.json"
    halves.write_text(json.dumps({"groups": {t: str(i < N // 2) for i, t in enumerate(TASKS)}}))
    argv = ["compare", *dirs, "--hypothesis", str(halves), "--permutations", "19", "--bootstraps", "20"]
    assert main([*argv, "--output", str(tmp_path / "a")]) == 0
    claims = json.loads((tmp_path / "a" / "comparison.json").read_text())["claims"]["claims"]
    assert set(find(claims, "generalisation", "halves")["statistics"]) == {"mantel_r", "difference"}
    assert main([*argv, "--control", "halves", "--output", str(tmp_path / "b")]) == 0
    claims = json.loads((tmp_path / "b" / "comparison.json").read_text())["claims"]["claims"]
    assert not [c for c in claims if c.get("hypothesis") == "halves"]
    partial = find(claims, "generalisation", "phenomenon")["tests"][0]["partial"]["halves"]
    assert partial["r"] is not None and "partial r | halves" in capsys.readouterr().out
