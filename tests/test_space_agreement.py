"""The ``agreement`` space builder (every two spaces of a run related; probes against transfer's
ceiling) and what each space cost (``execution.costs``), on small cases and a tiny-model run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from lingspace_harness import AnalysisOptions, DataError, load_harness
from lingspace_harness.analysis import analyse
from lingspace_harness.cli import main
from lingspace_harness.stats import symmetrise

N = 6
TASKS = [f"t{i}" for i in range(N)]
PERMUTATIONS = 199
OPTIONS = AnalysisOptions(permutations=PERMUTATIONS, seed=3, builders=["agreement"])


def symmetric(rng: np.random.Generator) -> np.ndarray:
    m = rng.uniform(0, 1, (N, N))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return m


def small_case(split_half: bool = True) -> dict:
    """gradsim (with its centred form), overlap with one undefined pair, and an asymmetric
    transfer with one undefined cell (one direction of a pair) and noisy split halves."""
    rng = np.random.default_rng(7)
    gradsim, centred, overlap = symmetric(rng), symmetric(rng), symmetric(rng)
    overlap[0, 1] = overlap[1, 0] = np.nan
    transfer = rng.normal(0, 1, (N, N)) + gradsim
    transfer[2, 3] = np.nan
    halves = {h: (transfer + rng.normal(0, 0.3, (N, N))).tolist() for h in ("a", "b")}

    def space(m: np.ndarray, **extra) -> dict:
        return {"tasks": TASKS, "matrix": [[None if np.isnan(v) else v for v in row] for row in m], **extra}

    return {
        "tasks": {t: {"phenomenon": "p"} for t in TASKS},
        "analysis": {},
        "spaces": {
            "gradsim": space(gradsim, centred=centred.tolist()),
            "overlap": space(overlap),
            "transfer": space(transfer, **({"split_half": halves} if split_half else {})),
        },
    }


def matrix(results: dict, name: str) -> np.ndarray:
    space, _, form = name.partition(".")
    return np.array(results["spaces"][space][form or "matrix"], dtype=float)


def direct(x: np.ndarray, y: np.ndarray, seed: int, permutations: int) -> tuple[float, float, int, int]:
    """Spearman r (scipy) of the off-diagonal upper-triangle cells defined in both spaces (each
    symmetrised unless both are symmetric), and the Mantel p computed pair by pair over the same
    seeded permutations of the rows and columns of the second space, or of the symmetric one where
    only one is: (r, p, pairs, undefined)."""
    sym = [np.allclose(m, m.T, equal_nan=True) for m in (x, y)]
    if sym[0] and not sym[1]:
        x, y = y, x
    if not all(sym):
        x, y = symmetrise(x), symmetrise(y)
    rows, cols = np.triu_indices(len(x), 1)

    def r_of(b: np.ndarray) -> float:
        valid = ~np.isnan(x[rows, cols]) & ~np.isnan(b[rows, cols])
        return spearmanr(x[rows, cols][valid], b[rows, cols][valid]).statistic

    valid = ~np.isnan(x[rows, cols]) & ~np.isnan(y[rows, cols])
    r = r_of(y)
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(len(x)), (permutations, 1)), axis=1)
    null = np.array([r_of(y[np.ix_(p, p)]) for p in perms])
    p = (np.count_nonzero(~(null < r - 1e-10)) + 1) / (permutations + 1)
    return r, p, int(valid.sum()), int((~valid).sum())


def test_agreement_equals_a_direct_computation() -> None:
    results = small_case()
    out = analyse(load_harness(), results, OPTIONS)["agreement"]
    json.dumps(out, allow_nan=False)
    assert list(out["probes"]) == ["gradsim", "gradsim.centred", "overlap", "transfer"]
    assert out["probes"]["gradsim.centred"] == {"space": "gradsim", "form": "centred"}
    assert [(p["a"], p["b"]) for p in out["pairs"]] == [
        ("gradsim", "gradsim.centred"),
        ("gradsim", "overlap"),
        ("gradsim", "transfer"),
        ("gradsim.centred", "overlap"),
        ("gradsim.centred", "transfer"),
        ("overlap", "transfer"),
    ]
    for pair in out["pairs"]:
        r, p, pairs, undefined = direct(matrix(results, pair["a"]), matrix(results, pair["b"]), 3, PERMUTATIONS)
        assert pair["r"] == pytest.approx(r, abs=1e-12) and pair["p"] == pytest.approx(p)
        assert (pair["n_pairs"], pair["n_undefined"]) == (pairs, undefined)
        assert pair["n_permutations"] == PERMUTATIONS
        assert pair["symmetrised"] == ("transfer" in (pair["a"], pair["b"]))
    by = {(p["a"], p["b"]): p for p in out["pairs"]}
    # undefined cells are left out and counted: one in transfer (its pair, symmetrised), one pair in overlap
    assert by["gradsim", "transfer"]["n_undefined"] == 1 and by["overlap", "transfer"]["n_undefined"] == 2
    assert by["gradsim", "overlap"]["n_pairs"] == 14
    zeroed = np.nan_to_num(matrix(results, "overlap"))  # had they been read as 0, r would differ
    assert by["gradsim", "overlap"]["r"] != pytest.approx(direct(matrix(results, "gradsim"), zeroed, 3, 9)[0])
    # each triangle of an asymmetric space on its own, as the hypotheses builder and compare do
    rows, cols = np.triu_indices(N, 1)
    g, t = matrix(results, "gradsim")[rows, cols], matrix(results, "transfer")[rows, cols]
    keep = ~np.isnan(t)
    assert by["gradsim", "transfer"]["upper"]["r"] == pytest.approx(spearmanr(g[keep], t[keep]).statistic)
    assert "upper" not in by["gradsim", "overlap"]


def test_probes_are_read_against_transfers_split_half_ceiling() -> None:
    results = small_case()
    out = analyse(load_harness(), results, OPTIONS)["agreement"]["transfer"]
    halves = [symmetrise(results["spaces"]["transfer"]["split_half"][h]) for h in ("a", "b")]
    rows, cols = np.triu_indices(N, 1)
    a, b = halves[0][rows, cols], halves[1][rows, cols]
    defined = ~np.isnan(a) & ~np.isnan(b)
    r_half = spearmanr(a[defined], b[defined]).statistic
    assert r_half > 0 and (~defined).sum() == 1
    ceiling = out["ceiling"]
    assert ceiling["r"] == pytest.approx(r_half) and ceiling["r_full"] == pytest.approx(2 * r_half / (1 + r_half))
    assert ceiling["symmetrised"] is True and out["reference"] == "transfer"
    assert set(out["probes"]) == {"gradsim", "gradsim.centred", "overlap"}
    for name, probe in out["probes"].items():
        r = direct(matrix(results, name), matrix(results, "transfer"), 3, 1)[0]
        assert probe["r"] == pytest.approx(r) and probe["ratio"] == pytest.approx(r / ceiling["r_full"])

    plain = analyse(load_harness(), small_case(split_half=False), OPTIONS)["agreement"]["transfer"]
    assert all(p["ci"] is not None and p["ratio_ci"] is None for p in plain["probes"].values())
    assert plain["ceiling"]["r_full"] is None and "--split-half" in plain["ceiling"]["reason"]
    assert all(
        p["ratio"] is None and "no ceiling" in p["reason"] and p["r"] is not None for p in plain["probes"].values()
    )


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # a draw of few distinct tasks
def test_each_probes_r_with_transfer_has_a_task_bootstrap_interval() -> None:
    """The interval, recomputed directly: draw tasks with replacement (the builder's seeded
    draws), keep the cells of distinct draws defined in both symmetrised spaces, scipy's Spearman
    r per draw, the 2.5th and 97.5th percentiles."""
    results = small_case()
    bootstraps = 40
    options = AnalysisOptions(permutations=PERMUTATIONS, bootstraps=bootstraps, seed=3, builders=["agreement"])
    out = analyse(load_harness(), results, options)["agreement"]["transfer"]
    draws = np.random.default_rng(3).integers(0, N, size=(bootstraps, N))
    t = symmetrise(matrix(results, "transfer"))
    for name, probe in out["probes"].items():
        x = symmetrise(matrix(results, name))  # an identity for the symmetric ones
        rs = []
        for draw in draws:
            i, j = np.triu_indices(N, 1)
            a, b = draw[i], draw[j]
            keep = (a != b) & ~np.isnan(x[a, b]) & ~np.isnan(t[a, b])
            rs.append(spearmanr(x[a, b][keep], t[a, b][keep]).statistic if keep.sum() > 2 else np.nan)
        rs = np.array(rs, dtype=float)
        expected = np.percentile(rs[np.isfinite(rs)], [2.5, 97.5])
        assert probe["ci"] == pytest.approx(expected.tolist())
        assert probe["ci"][0] < probe["ci"][1]
        assert probe["ratio_ci"] == pytest.approx((expected / out["ceiling"]["r_full"]).tolist())
    no_draws = AnalysisOptions(permutations=PERMUTATIONS, bootstraps=0, seed=3, builders=["agreement"])
    assert all(
        p["ci"] is None for p in analyse(load_harness(), results, no_draws)["agreement"]["transfer"]["probes"].values()
    )


def test_fewer_than_two_spaces_give_no_pairs_and_undefined_stays_null() -> None:
    results = small_case()
    alone = {**results, "spaces": {"overlap": results["spaces"]["overlap"]}}
    out = analyse(load_harness(), alone, OPTIONS)["agreement"]
    assert out["pairs"] == [] and "1 space(s)" in out["reason"] and "transfer" not in out
    out = analyse(load_harness(), {**results, "spaces": {}}, OPTIONS)["agreement"]
    assert out == {"probes": {}, "n_tasks": 0, "pairs": [], "reason": "0 space(s) in this run; agreement needs 2"}
    # gradsim alone still has two probes: the space and its centred form
    one = analyse(load_harness(), {**results, "spaces": {"gradsim": results["spaces"]["gradsim"]}}, OPTIONS)
    assert [(p["a"], p["b"]) for p in one["agreement"]["pairs"]] == [("gradsim", "gradsim.centred")]
    # over two tasks nothing can be computed: null with a reason, and no ratio either
    two = {
        "spaces": {
            name: {**s, "tasks": TASKS[:2], "matrix": np.array(s["matrix"], dtype=float)[:2, :2].tolist()}
            for name, s in results["spaces"].items()
            if name != "gradsim"
        }
    }
    two["spaces"]["transfer"].pop("split_half")
    out = analyse(load_harness(), two, OPTIONS)["agreement"]
    assert out["pairs"][0]["r"] is None and out["pairs"][0]["reason"]
    assert out["transfer"]["probes"]["overlap"] == {
        "r": None,
        "ci": None,
        "p": None,
        "ratio": None,
        "ratio_ci": None,
        "reason": out["pairs"][0]["reason"],
    }


def test_a_malformed_space_is_a_one_line_data_error() -> None:
    results = small_case()
    results["spaces"]["overlap"]["matrix"] = [[1.0, 0.5]]
    with pytest.raises(DataError, match="space 'overlap' needs a numeric 6x6 matrix"):
        analyse(load_harness(), results, OPTIONS)
    results["spaces"]["overlap"]["matrix"] = np.eye(N).tolist()
    results["spaces"]["gradsim"]["centred"] = [[1.0]]  # a form that is not a matrix over the tasks: no probe
    assert "gradsim.centred" not in analyse(load_harness(), results, OPTIONS)["agreement"]["probes"]


RUN = [
    "--tasks",
    "blimp_anaphor_*,blimp_passive_*",
    "--limit",
    "6",
    "--metric",
    "gradsim,overlap",
    "--permutations",
    "99",
]


def test_a_run_writes_agreement_and_each_spaces_cost(tiny_model: Path, blimp_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--model", str(tiny_model), "--data-dir", str(blimp_dir), *RUN, "--output", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    agreement = results["analysis"]["agreement"]
    assert [(p["a"], p["b"]) for p in agreement["pairs"]] == [
        ("gradsim", "gradsim.centred"),
        ("gradsim", "overlap"),
        ("gradsim.centred", "overlap"),
    ]
    for pair in agreement["pairs"]:
        r, p, pairs, _ = direct(matrix(results, pair["a"]), matrix(results, pair["b"]), 0, 99)
        assert pair["r"] == pytest.approx(r) and pair["p"] == pytest.approx(p) and pair["n_pairs"] == pairs == 6
    costs = results["execution"]["costs"]
    assert set(costs) == {"gradsim", "overlap"}
    for name, other in (("gradsim", "overlap"), ("overlap", "gradsim")):
        (group,) = costs[name]["units"]  # both rest on the same 4 gradient units, each counted in full
        assert group["kind"] == "gradient" and group["count"] == 4 and group["shared_with"] == [other]
        assert costs[name]["cost_s"] == pytest.approx(group["seconds"] + costs[name]["compute_s"])
        assert group["seconds"] > 0 and "reason" not in costs[name]
    stored = costs["gradsim"]["units"][0]["seconds"]

    assert main(argv) == 0  # resumed: nothing recomputed, the units' stored seconds are reported again
    again = json.loads((out / "results.json").read_text())
    assert again["execution"]["costs"]["overlap"]["units"][0]["seconds"] == stored
    assert again["analysis"] == results["analysis"] and again["spaces"] == results["spaces"]

    shutil.rmtree(out / "units" / "seconds-gradient")  # units from a version that kept no seconds
    assert main(argv) == 0
    unknown = json.loads((out / "results.json").read_text())["execution"]["costs"]["gradsim"]
    assert unknown["cost_s"] is None and "gradient units of 4 of 4 tasks" in unknown["reason"]

    assert main(["report", str(out)]) == 0  # compare and report read runs with the new entries
    assert "Space agreement" in (out / "report.html").read_text() and (out / "report" / "agreement.png").is_file()
    other = tmp_path / "other"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--data-dir",
                str(blimp_dir),
                *RUN,
                "--seed",
                "1",
                "--output",
                str(other),
            ]
        )
        == 0
    )
    argv = ["compare", str(out), str(other), "--output", str(tmp_path / "cmp"), "--permutations", "19"]
    assert main(argv) == 2  # one model under two seeds is no trajectory, unless asked for
    assert main([*argv, "--allow-same-model"]) == 0
    assert set(json.loads((tmp_path / "cmp" / "comparison.json").read_text())["spaces"]) == {"gradsim", "overlap"}


def test_transfer_and_cka_costs_count_the_tunes_and_the_gradients(
    tiny_model: Path, blimp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model),
                "--data-dir",
                str(blimp_dir),
                "--tasks",
                "blimp_anaphor_*",
                "--limit",
                "6",
                "--metric",
                "transfer,cka",
                "--ftgd-steps",
                "2",
                "--split-half",
                "--permutations",
                "19",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    costs = results["execution"]["costs"]
    groups = {name: {(g["variant"], g["kind"]): g for g in cost["units"]} for name, cost in costs.items()}
    # transfer: the 2 gradient units and its 2 tunes; its halves' tunes apart, in split_half_s
    assert set(groups["transfer"]) == {
        ("", "gradient"),
        ("", "transfer"),
        ("half-a", "transfer"),
        ("half-b", "transfer"),
    }
    assert all(g["count"] == 2 and g["seconds"] > 0 for g in groups["transfer"].values())
    main_units = [g for (variant, _), g in groups["transfer"].items() if not variant]
    assert costs["transfer"]["cost_s"] == pytest.approx(
        sum(g["seconds"] for g in main_units) + costs["transfer"]["compute_s"]
    )
    assert costs["transfer"]["split_half_s"] > groups["transfer"]["half-a", "transfer"]["seconds"]
    # cka rests on transfer's tunes (it needs their states) and so on the gradients: shared, counted in full
    assert set(groups["cka"]) == {("", "gradient"), ("", "transfer")}
    assert groups["cka"]["", "transfer"]["shared_with"] == ["transfer"]
    assert groups["cka"]["", "transfer"]["seconds"] == groups["transfer"]["", "transfer"]["seconds"]
    agreement = results["analysis"]["agreement"]
    assert [(p["a"], p["b"]) for p in agreement["pairs"]] == [("transfer", "cka")]
    assert set(agreement["transfer"]["probes"]) == {"cka"}
