"""benchmarks/probe_study.py's table: each probe's agreement with transfer and its cost as
results.json holds them, the goal verdict, and undefined values printed as undefined."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_study():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports its sibling common.py
    try:
        spec = importlib.util.spec_from_file_location("probe_study", ROOT / "benchmarks" / "probe_study.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def results() -> dict:
    probes = {
        "gradsim": {"r": 0.72, "ci": [0.5, 0.85], "p": 0.0001, "ratio": 0.9, "ratio_ci": [0.625, 1.0625]},
        "lookahead": {"r": 0.8, "ci": [0.6, 0.9], "p": 0.0002, "ratio": 1.0, "ratio_ci": [0.75, 1.125]},
        "overlap": {"r": None, "ci": None, "p": None, "ratio": None, "ratio_ci": None, "reason": "no r"},
    }
    baseline = {"variant": "", "kind": "transfer-baseline", "seconds": 700.0}  # the study's extra: no space's cost
    costs = {
        "transfer": {
            "cost_s": 1700.0,
            "units": [
                {"variant": "", "kind": "transfer", "seconds": 980.0},
                baseline,
                {"variant": "half-a", "kind": "transfer", "seconds": 990.0},
            ],
        },
        "gradsim": {"cost_s": 20.0},
        "lookahead": {"cost_s": 300.0},
        "overlap": {"cost_s": None},
    }
    return {
        "tasks": {f"t{i}": {} for i in range(12)},
        "execution": {"costs": costs},
        "analysis": {
            "agreement": {
                "probes": {n: {"space": n, "form": "matrix"} for n in [*probes, "transfer"]},
                "transfer": {"ceiling": {"r": 0.67, "r_full": 0.8}, "probes": probes},
            }
        },
    }


def test_rows_read_agreement_and_costs_and_judge_the_goal() -> None:
    study = load_study()
    ceiling, rows = study.rows(results())
    assert ceiling["r_full"] == 0.8
    by = {row[0]: row for row in rows}
    # gradsim: 0.9 of the ceiling for 1/50 of the cost meets the goal exactly
    assert by["gradsim"] == ["gradsim", "+0.72", "[+0.50, +0.85]", "0.0001", "+0.90", "[+0.62, +1.06]", "0.020", "yes"]
    assert by["lookahead"][6:] == ["0.300", "no"]  # at the ceiling, but 3/10 of transfer's cost
    assert by["overlap"][1:] == ["undefined"] * 6 + ["no"]  # never a 0 for an undefined value
