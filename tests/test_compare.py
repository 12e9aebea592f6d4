"""The ``compare`` and ``sweep`` commands: pair statistics, per-run summaries, order, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from lingspace_harness.cli import main

TASKS = [f"blimp_t{i}" for i in range(8)]
PHENOMENA = ["agr", "agr", "isl", "isl", "npi", "npi", "bind", "bind"]


def results_for(noise: float, seed: int, tasks: list[str] = TASKS) -> dict:
    """A run whose spaces are a common structure plus ``noise``: gradsim and overlap
    (symmetric) and transfer (asymmetric)."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).uniform(0, 1, (len(TASKS), len(TASKS)))
    idx = [TASKS.index(t) if t in TASKS else i % len(TASKS) for i, t in enumerate(tasks)]
    base = base[np.ix_(idx, idx)]
    n = len(tasks)
    sym = (base + base.T) / 2 + noise * rng.normal(size=(n, n))
    sym = (sym + sym.T) / 2
    np.fill_diagonal(sym, 1.0)
    overlap = np.clip(sym / 4, 0, 1)
    np.fill_diagonal(overlap, 1.0)
    transfer = base + noise * rng.normal(size=(n, n))
    labels = {t: PHENOMENA[TASKS.index(t)] if t in TASKS else "extra" for t in tasks}
    return {
        "version": 1,
        "config": {"model": "m", "revision": None},
        "model": {"name": "m"},
        "tasks": {
            t: {"phenomenon": labels[t], "field": "syntax", "group": labels[t], "accuracy": 0.5 + 0.05 * i + noise}
            for i, t in enumerate(tasks)
        },
        "spaces": {
            name: {"tasks": list(tasks), "matrix": m.tolist()}
            for name, m in (("gradsim", sym), ("overlap", overlap), ("transfer", transfer))
        },
        "analysis": {},
    }


def write(directory: Path, results: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results))
    return directory


def upper(results: dict, space: str) -> np.ndarray:
    m = np.array(results["spaces"][space]["matrix"])
    return m[np.triu_indices(len(m), 1)]


def test_compare_three_runs(tmp_path: Path, capsys) -> None:
    runs = {"a": results_for(0.0, 1), "b": results_for(0.05, 2), "c": results_for(0.4, 3)}
    dirs = [str(write(tmp_path / name, r)) for name, r in runs.items()]
    out = tmp_path / "out"
    assert main(["compare", *dirs, "--output", str(out), "--permutations", "199"]) == 0
    printed = capsys.readouterr().out
    comparison = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in comparison["runs"]] == ["a", "b", "c"]
    gradsim = comparison["spaces"]["gradsim"]
    assert gradsim["symmetric"] and gradsim["tasks"] == TASKS and gradsim["dropped"] == {}
    pairs = {(p["a"], p["b"]): p for p in gradsim["pairs"]}
    assert list(pairs) == [("a", "b"), ("b", "c"), ("a", "c")]
    assert pairs["a", "b"]["relations"] == ["previous", "first"] and pairs["a", "c"]["relations"] == ["first"]
    expected = spearmanr(upper(runs["b"], "gradsim"), upper(runs["c"], "gradsim")).statistic
    assert pairs["b", "c"]["spearman"] == pytest.approx(expected, abs=1e-12)
    assert pairs["a", "b"]["spearman"] > pairs["a", "c"]["spearman"]  # more noise, less alike
    assert 1 / 200 <= pairs["a", "b"]["p"] < 0.05 and pairs["a", "b"]["n_permutations"] == 199

    transfer = comparison["spaces"]["transfer"]
    assert not transfer["symmetric"]
    t = {(p["a"], p["b"]): p for p in transfer["pairs"]}["a", "b"]
    sym = [
        (np.array(runs[k]["spaces"]["transfer"]["matrix"]) + np.array(runs[k]["spaces"]["transfer"]["matrix"]).T)
        for k in ("a", "b")
    ]
    iu = np.triu_indices(8, 1)
    assert t["symmetrised"] and t["spearman"] == pytest.approx(spearmanr(sym[0][iu], sym[1][iu]).statistic)
    assert t["upper"]["r"] == pytest.approx(
        spearmanr(
            np.array(runs["a"]["spaces"]["transfer"]["matrix"])[iu],
            np.array(runs["b"]["spaces"]["transfer"]["matrix"])[iu],
        ).statistic
    )

    run_c = comparison["runs"][2]
    overlap = np.array(runs["c"]["spaces"]["overlap"]["matrix"])
    assert run_c["mean_overlap"] == pytest.approx(overlap[~np.eye(8, dtype=bool)].mean())
    assert run_c["mean_accuracy"] == pytest.approx(np.mean([t["accuracy"] for t in runs["c"]["tasks"].values()]))
    assert set(run_c["hypotheses"]["gradsim"]) >= {"phenomenon", "field", "group"}
    assert run_c["generalisation"]["gradsim"]["phenomenon"]["difference"] is not None
    run_b = comparison["runs"][1]
    assert comparison["runs"][0]["change"] is None
    assert run_c["change"]["mean_overlap"] == pytest.approx(run_c["mean_overlap"] - run_b["mean_overlap"])
    assert run_c["change"]["generalisation"]["gradsim"]["phenomenon"] == pytest.approx(
        run_c["generalisation"]["gradsim"]["phenomenon"]["difference"]
        - run_b["generalisation"]["gradsim"]["phenomenon"]["difference"]
    )

    # the printed table: runs in order, and the Spearman with the previous run
    section = printed.split("space gradsim")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in section[2:]] == ["a", "b", "c"]
    assert section[4].split()[1] == f"{pairs['b', 'c']['spearman']:.4f}"


def test_order_and_labels_follow_the_arguments(tmp_path: Path, capsys) -> None:
    a, b = write(tmp_path / "a", results_for(0.0, 1)), write(tmp_path / "b", results_for(0.1, 2))
    out = tmp_path / "out"
    assert main(["compare", str(b), str(a), "--labels", "late,early", "--output", str(out), "--permutations", "9"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert [(r["label"], Path(r["dir"]).name) for r in comparison["runs"]] == [("late", "b"), ("early", "a")]
    assert comparison["spaces"]["gradsim"]["pairs"][0]["a"] == "late"


def test_differing_tasks_are_intersected_and_said(tmp_path: Path, capsys) -> None:
    a = write(tmp_path / "a", results_for(0.0, 1))
    b = write(tmp_path / "b", results_for(0.1, 2, TASKS[1:] + ["blimp_extra"]))
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--output", str(out), "--permutations", "9"]) == 0
    err = capsys.readouterr().err
    assert "comparing the 7 they share" in err
    gradsim = json.loads((out / "comparison.json").read_text())["spaces"]["gradsim"]
    assert gradsim["tasks"] == TASKS[1:] and gradsim["dropped"] == {"a": ["blimp_t0"], "b": ["blimp_extra"]}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no results.json in"),
        ("one", "at least two run directories"),
        ("disjoint", "no task space is common"),
        ("labels", "1 labels for 2 runs"),
        ("same-model", "hold runs of the same model"),  # e.g. a local directory run under two revision names
    ],
)
def test_compare_errors_are_one_line(tmp_path: Path, capsys, case: str, message: str) -> None:
    first, other = results_for(0.0, 1), results_for(0.0, 2)
    if case == "disjoint":
        other["spaces"] = {"cka": other["spaces"]["gradsim"]}
    if case == "same-model":
        for run, revision in ((first, "step1000"), (other, "step143000")):
            run.update(config={"model": "./dir", "revision": revision}, fingerprints={"model": "params:0f"})
    a, b = write(tmp_path / "a", first), write(tmp_path / "b", other)
    args = {
        "missing": [str(a), str(tmp_path / "nowhere")],
        "one": [str(a)],
        "disjoint": [str(a), str(b)],
        "labels": [str(a), str(b), "--labels", "x"],
        "same-model": [str(a), str(b), "--order-by", "steps"],
    }[case]
    assert main(["compare", *args, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "comparison.json").exists()


def test_sweep_over_two_models_resumes(tiny_model_factory, blimp_dir: Path, tmp_path: Path, capsys) -> None:
    models = [tiny_model_factory("gpt2"), tiny_model_factory("gpt_neox")]
    out = tmp_path / "sweep"
    argv = [
        "sweep",
        "--models",
        ",".join(map(str, models)),
        "--labels",
        "small,neox",
        "--output",
        str(out),
        "--permutations",
        "19",
        "--",
        "--tasks",
        "blimp_anaphor_*,blimp_passive_*",
        "--data-dir",
        str(blimp_dir),
        "--limit",
        "8",
        "--metric",
        "gradsim,overlap",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "small: running" in first and "neox: running" in first
    done = {label: json.loads((out / label / "results.json").read_text()) for label in ("small", "neox")}
    assert [done[k]["config"]["model"] for k in ("small", "neox")] == list(map(str, models))
    comparison = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in comparison["runs"]] == ["small", "neox"]
    assert set(comparison["spaces"]) == {"gradsim", "overlap"} and len(comparison["spaces"]["gradsim"]["tasks"]) == 4

    units = {p: p.stat().st_mtime_ns for label in ("small", "neox") for p in (out / label / "units").rglob("*.npy")}
    assert units and main(argv) == 0  # resumable: both runs resume from their units, nothing is recomputed
    assert {p: p.stat().st_mtime_ns for p in units} == units
    again = {label: json.loads((out / label / "results.json").read_text()) for label in ("small", "neox")}
    assert all(again[k]["spaces"] == done[k]["spaces"] for k in again)
    # a changed run option is refused for a label that holds another run, in one line
    capsys.readouterr()
    assert main([*argv, "--seed", "3"]) == 2
    assert "holds another run" in capsys.readouterr().err

    assert main(["report", str(out)]) == 0  # a comparison directory gets trajectory plots
    assert (out / "report" / "trajectory-spearman-previous.png").is_file()
    assert main(["sweep", "--models", "x,y", "--output", str(out), "--", "--tasks", "t", "--output", "z"]) == 2
    assert "do not pass --output" in capsys.readouterr().err
