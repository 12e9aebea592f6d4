"""Partial Mantel tests (Freedman-Lane and raw), Holm's adjustment, and the Mantel tests'
error rates on synthetic spaces with a known truth (benchmarks/mantel_simulation.py, fewer
simulations). Rates are checked against alpha within three Monte-Carlo standard errors, with
fixed seeds: the same numbers every time, and a scheme that drifts off alpha fails."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from lingspace_harness import UserError
from lingspace_harness.stats import holm, partial_mantel

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mantel_simulation", ROOT / "benchmarks" / "mantel_simulation.py")
assert spec is not None and spec.loader is not None
sim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sim)

ALPHA, SIMS, PERMUTATIONS = 0.05, 300, 99
#: Three Monte-Carlo standard errors of a rejection rate of ALPHA over SIMS simulations.
TOLERANCE = 3 * np.sqrt(ALPHA * (1 - ALPHA) / SIMS)


def rate(scenario, scheme: str | None = None, effect: float = 0.0, seed: int = 0) -> float:
    return sim.rejection_rate(
        scenario, sims=SIMS, permutations=PERMUTATIONS, effect=effect, scheme=scheme, alpha=ALPHA, seed=seed
    )[0]


# -- Freedman-Lane against a brute-force reference ------------------------------------------


def _freedman_lane_by_hand(space: np.ndarray, hyp: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    """Observed partial r and the exact Freedman-Lane p over all n! permutations, by least squares."""
    n = len(space)
    iu = np.triu_indices(n, 1)
    x, y, z = (rankdata(m[iu]) for m in (space, hyp, control))
    design = np.c_[np.ones(len(z)), z]
    fitted = design @ np.linalg.lstsq(design, x, rcond=None)[0]
    residual = np.zeros((n, n))
    residual[iu] = x - fitted
    residual = residual + residual.T

    def partial(values: np.ndarray) -> float:
        a = values - design @ np.linalg.lstsq(design, values, rcond=None)[0]
        b = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))

    observed = partial(x)
    null = [partial(fitted + residual[np.ix_(p, p)][iu]) for p in itertools.permutations(range(n))]
    return observed, float(np.mean(np.array(null) >= observed - 1e-10))


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.normal(size=(n, n))
    return (m + m.T) / 2


def test_freedman_lane_matches_the_exact_distribution() -> None:
    rng = np.random.default_rng(14)
    space, hyp, control = _sym(rng, 5), _sym(rng, 5), _sym(rng, 5)
    hyp += 0.3 * space + 0.8 * control
    space += 0.8 * control  # both depend on the control
    observed, exact = _freedman_lane_by_hand(space, hyp, control)
    test = partial_mantel(space, hyp, control, permutations=20000, seed=1)
    assert 0.2 < exact < 0.5
    assert test["r"] == pytest.approx(observed, abs=1e-12) and test["permutation"] == "freedman-lane"
    assert test["p"] == pytest.approx(exact, abs=0.01)  # 3 Monte-Carlo s.e. of 20,000 permutations
    raw = partial_mantel(space, hyp, control, permutations=20000, seed=1, permutation="raw")
    assert raw["r"] == test["r"] and raw["permutation"] == "raw" and abs(raw["p"] - exact) > 0.05


def test_freedman_lane_with_missing_cells_and_bad_schemes() -> None:
    rng = np.random.default_rng(3)
    space, hyp, control = _sym(rng, 12), _sym(rng, 12), _sym(rng, 12)
    hyp += space
    holed = space.copy()
    holed[0, 5] = holed[5, 0] = np.nan
    test = partial_mantel(holed, hyp, control, permutations=999, seed=2)
    assert test["n_pairs"] == 65 and test["p"] < 0.01 and np.isfinite(test["r"])
    assert test == partial_mantel(holed, hyp, control, permutations=999, seed=2)  # same seed, same numbers
    with pytest.raises(UserError, match="permutation must be one of"):
        partial_mantel(space, hyp, control, permutation="kennedy")


# -- Holm ------------------------------------------------------------------------------------


def test_holm_adjusts_step_down_and_leaves_undefined_out() -> None:
    assert holm([0.01, None, 0.04, 0.03, float("nan")]) == pytest.approx([0.03, None, 0.06, 0.06, None])
    assert holm([0.5, 0.2]) == [0.5, 0.4]  # monotone: never below an earlier step
    assert holm([0.9, 0.8, 0.7]) == [1.0, 1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]
    with pytest.raises(UserError):
        holm([1.5])


# -- error rates and power -------------------------------------------------------------------


def test_mantel_false_positive_rate_is_alpha() -> None:
    assert abs(rate(sim.mantel_case) - ALPHA) <= TOLERANCE


def test_partial_mantel_under_a_structured_control() -> None:
    freedman_lane = rate(sim.structured_control, "freedman-lane")
    raw = rate(sim.structured_control, "raw")
    assert abs(freedman_lane - ALPHA) <= TOLERANCE
    assert raw > ALPHA + TOLERANCE  # the raw scheme is liberal here, as the literature says


def test_nested_label_null_holds() -> None:
    assert abs(rate(sim.nested, "freedman-lane") - ALPHA) <= TOLERANCE


def test_power_on_a_known_effect() -> None:
    assert rate(sim.mantel_case, effect=0.5) > 0.8
    assert rate(sim.structured_control, "freedman-lane", effect=0.5) > 0.5
