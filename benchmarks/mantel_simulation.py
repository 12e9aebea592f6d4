"""Mantel and partial Mantel tests on synthetic task spaces with a known truth.

Prints, for each scenario, how often p <= alpha over many simulated spaces, with its Monte-Carlo
standard error sqrt(rate (1 - rate) / sims): under a true null the rate must stay within
Monte-Carlo error of alpha; under a planted effect it is the power. The partial Mantel test is
run with both permutation schemes, Freedman-Lane (the default) and raw (the space permuted).

    python benchmarks/mantel_simulation.py [--sims 2000] [--permutations 199] [--tasks 24] [--seed 0]

Scenarios (tasks in phenomena of 4, two phenomena to a field):

- ``mantel-null``: the space is symmetric noise with task-level (row) effects; Mantel against
  same-phenomenon. Null.
- ``mantel-power``: the space adds ``effect`` x same-phenomenon to that noise. Power.
- ``partial-null-structured``: the control is task-structured (c_i + c_j, c in {0, 1, 2}), the
  hypothesis groups tasks of similar c (so it correlates with the control), and the space is
  the control plus noise within the control's levels: the space depends on the hypothesis only
  through the control. Null; the raw scheme is liberal here.
- ``partial-nested-null``: the space follows phenomenon; field given phenomenon (field contains
  phenomenon). Null: nothing beyond the lower label.
- ``partial-power``: ``partial-null-structured`` with ``effect`` x hypothesis added within the
  control's levels. Power.

The scenarios' nulls are exact for the partial Spearman r: the space's ranks are a linear
function of the control's (its levels) plus noise independent of the hypothesis.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from lingspace_harness.stats import mantel, partial_mantel

Scenario = Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


def symmetric_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """A symmetric matrix of unit-variance normal entries (zero diagonal)."""
    m = rng.normal(size=(n, n))
    m = (m + m.T) / np.sqrt(2)
    np.fill_diagonal(m, 0.0)
    return m


def same(labels: np.ndarray) -> np.ndarray:
    return np.equal.outer(labels, labels).astype(float)


def phenomena(n: int) -> np.ndarray:
    return np.arange(n) // 4


def mantel_case(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray, None]:
    """Noise with row effects (a task similar to all others), plus ``effect`` x same-phenomenon."""
    rows = rng.normal(size=n)
    hyp = same(phenomena(n))
    return np.add.outer(rows, rows) + symmetric_noise(rng, n) + effect * hyp, hyp, None


def structured_control(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control c_i + c_j; hypothesis: same group of tasks sorted by c (ties broken at random);
    space: the control plus noise bounded within its levels (spaced 1), shifted by ``effect``
    (in noise units) on same-hypothesis pairs."""
    c = rng.integers(0, 3, size=n)
    control = np.add.outer(c, c).astype(float)
    hyp = same(np.argsort(np.argsort(c + 0.5 * rng.uniform(size=n))) // 4)
    space = control + 0.45 * np.tanh(symmetric_noise(rng, n) + effect * hyp)
    return space, hyp, control


def nested(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The space follows phenomenon (plus ``effect`` x same-field); field given phenomenon."""
    phen = same(phenomena(n))
    field = same(phenomena(n) // 2)
    return phen + symmetric_noise(rng, n) + effect * field, field, phen


def rejection_rate(
    scenario: Scenario,
    *,
    sims: int,
    permutations: int,
    n: int = 24,
    effect: float = 0.0,
    scheme: str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """How often p <= ``alpha`` over ``sims`` spaces (a partial Mantel test under ``scheme``
    where the scenario has a control, else a Mantel test), and its Monte-Carlo standard error."""
    rng = np.random.default_rng(seed)
    hits = 0
    for k in range(sims):
        space, hyp, control = scenario(rng, n, effect)
        if control is None:
            test = mantel(space, hyp, permutations=permutations, seed=seed + k)
        else:
            test = partial_mantel(
                space, hyp, control, permutations=permutations, seed=seed + k, permutation=scheme or "freedman-lane"
            )
        hits += test["p"] <= alpha
    rate = hits / sims
    return rate, float(np.sqrt(rate * (1 - rate) / sims))


#: (name, scenario, effect, partial schemes: None for a Mantel test)
CASES: list[tuple[str, Scenario, float, tuple[str | None, ...]]] = [
    ("mantel-null", mantel_case, 0.0, (None,)),
    ("mantel-power", mantel_case, 0.5, (None,)),
    ("partial-null-structured", structured_control, 0.0, ("freedman-lane", "raw")),
    ("partial-nested-null", nested, 0.0, ("freedman-lane", "raw")),
    ("partial-power", structured_control, 0.5, ("freedman-lane", "raw")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--permutations", type=int, default=199)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.sims} simulations, {args.permutations} permutations, {args.tasks} tasks, alpha {args.alpha}")
    print(f"null: within Monte-Carlo error of alpha ({np.sqrt(args.alpha * (1 - args.alpha) / args.sims):.4f})")
    print(f"{'scenario':<25} {'test':<22} {'effect':>6} {'rate':>7} {'MC s.e.':>8}")
    for name, scenario, effect, schemes in CASES:
        for scheme in schemes:
            rate, se = rejection_rate(
                scenario,
                sims=args.sims,
                permutations=args.permutations,
                n=args.tasks,
                effect=effect,
                scheme=scheme,
                alpha=args.alpha,
                seed=args.seed,
            )
            test = "mantel" if scheme is None else f"partial ({scheme})"
            print(f"{name:<25} {test:<22} {effect:>6.2f} {rate:>7.4f} {se:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
