"""The claims' statistics tested by simulation against a known truth (issue 32, item 7).

Synthetic task spaces: N tasks in P phenomena; run r's space is
``s_r * same_phenomenon + u_i + u_j + v_r,i + v_r,j + e_r,ij`` with task effects u (shared by the
runs: the same tasks), the run's own task effects v (sd 0.3) and cell noise e (independent per
run, sd ``noise_r``), built from two halves of noise sd ``noise_r * sqrt(2)`` (their mean is the
space) so that each run carries split halves.
Scenarios, each over ``--sims`` simulations with fixed seeds:

- ``null``: 4 runs, no trend (s constant): how often the claim (Mantel r and within - between
  difference) is called ``supported``, by the new rule (slope interval and order test) and by
  the old one (order test of the point values only); and the same with the runs passed in the
  order that makes the Mantel r rise (``sorted null``, the order the issue's example picked).
- ``unequal noise``: 4 runs, no trend in s but the noise falling along the runs, so the raw
  Mantel r rises with reliability alone: supported rate raw against attenuation-corrected.
- ``coverage``: 2 runs, s from 0.2 to 0.5: how often the 95% interval of the step difference of
  the within - between difference covers its true value 0.3.
- ``power``: 4 runs, s rising linearly: supported rate (new and old rule).

Rates come with their Monte-Carlo standard error sqrt(p (1 - p) / sims).

    python benchmarks/claims_simulation.py [--sims 2000] [--bootstraps 1000] [--tasks 16]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
from lingspace_harness_plugins.claim_attenuation import corrected, reliability
from lingspace_harness_plugins.claim_statistics import correlation, difference, per_resample, resamples
from lingspace_harness_plugins.claims import ClaimOptions, moves, verdict


@dataclass
class Setting:
    tasks: int = 16
    phenomena: int = 4
    bootstraps: int = 200
    task_sd: float = 0.5
    run_task_sd: float = 0.3


def same(s: Setting) -> np.ndarray:
    labels = np.arange(s.tasks) % s.phenomena
    return (labels[:, None] == labels[None, :]).astype(float)


def _noise(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    m = np.triu(rng.normal(scale=sd, size=(n, n)), 1)
    return m + m.T


def series(
    rng: np.random.Generator, signal: list[float], noise: list[float], s: Setting
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per run, (space, half a, half b); the space is the halves' mean."""
    u = rng.normal(scale=s.task_sd, size=s.tasks)
    base = u[:, None] + u[None, :]
    out = []
    for level, sd in zip(signal, noise):
        v = rng.normal(scale=s.run_task_sd, size=s.tasks)  # this run's own task effects
        shared = level * same(s) + base + v[:, None] + v[None, :]
        halves = [shared + _noise(rng, s.tasks, sd * math.sqrt(2)) for _ in range(2)]
        for h in halves:
            np.fill_diagonal(h, 1.0)
        out.append(((halves[0] + halves[1]) / 2, halves[0], halves[1]))
    return out


def old_direction(stat: dict) -> int | None:
    """The rule before issue 32: the order test of the point values decides with 4+ runs."""
    t = stat["trend"]
    if t["rho"] is None:
        return None if t["n_runs"] < 4 else 0
    return 1 if t["p_increase"] < 0.05 else -1 if t["p_decrease"] < 0.05 else 0


def claim(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], s: Setting, seed: int) -> dict[str, dict]:
    """The generalisation claim's statistics on one simulated series: raw Mantel r, difference and
    the attenuation-corrected Mantel r."""
    idx = resamples(s.tasks, s.bootstraps, seed)
    o = ClaimOptions(permutations=math.factorial(len(runs)), bootstraps=s.bootstraps, seed=seed)
    labels = [f"r{i}" for i in range(len(runs))]
    h = same(s)
    r = np.array([per_resample(correlation(m, h), idx) for m, _, _ in runs])
    d = np.array([per_resample(difference(m, h), idx) for m, _, _ in runs])
    rel = np.array([reliability(a, b, idx) for _, a, b in runs])
    return {
        "mantel_r": moves(labels, r, o),
        "difference": moves(labels, d, o),
        "corrected": moves(labels, corrected(r, rel), o),
    }


def verdicts(stats: dict[str, dict]) -> dict[str, str]:
    raw = [stats["mantel_r"], stats["difference"]]
    return {
        "new": verdict([x["direction"] for x in raw]),
        "old": verdict([old_direction(x) for x in raw]),
        "corrected": verdict([stats["corrected"]["direction"]]),
    }


def rate(hits: list[bool]) -> tuple[float, float]:
    """The share of hits and its Monte-Carlo standard error."""
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / len(hits))


def null_rates(sims: int, s: Setting, seed: int = 0, sort: bool = False) -> dict[str, tuple[float, float]]:
    """``supported`` rates (new, old) of 4-run series with no true trend; ``sort`` passes the runs
    in the order that makes their Mantel r rise."""
    hits: dict[str, list[bool]] = {"new": [], "old": []}
    for k in range(sims):
        runs = series(np.random.default_rng([seed, k]), [0.3] * 4, [1.0] * 4, s)
        if sort:
            h = same(s)
            runs.sort(key=lambda run: per_resample(correlation(run[0], h), np.arange(s.tasks)[None, :])[0])
        found = verdicts(claim(runs, s, seed + k))
        for key in hits:
            hits[key].append(found[key] == "supported")
    return {key: rate(v) for key, v in hits.items()}


def unequal_noise_rates(sims: int, s: Setting, seed: int = 1) -> dict[str, tuple[float, float]]:
    """``supported`` rates (raw rule, corrected rule) when only the noise falls along 4 runs."""
    hits: dict[str, list[bool]] = {"raw": [], "corrected": []}
    for k in range(sims):
        runs = series(np.random.default_rng([seed, k]), [1.5] * 4, [1.6, 1.2, 0.8, 0.4], s)
        stats = claim(runs, s, seed + k)
        hits["raw"].append(verdict([stats["mantel_r"]["direction"]]) == "supported")
        hits["corrected"].append(verdicts(stats)["corrected"] == "supported")
    return {key: rate(v) for key, v in hits.items()}


def coverage(sims: int, s: Setting, seed: int = 2, truth: float = 0.3) -> tuple[float, float]:
    """How often the step difference's 95% interval (within - between, 2 runs) covers ``truth``."""
    hits = []
    for k in range(sims):
        runs = series(np.random.default_rng([seed, k]), [0.2, 0.2 + truth], [1.0, 1.0], s)
        ci = claim(runs, s, seed + k)["difference"]["steps"][0]["ci"]
        hits.append(ci is not None and ci[0] <= truth <= ci[1])
    return rate(hits)


def power(sims: int, s: Setting, seed: int = 3, step: float = 0.5) -> dict[str, tuple[float, float]]:
    """``supported`` rates (new, old) of 4 runs whose signal rises by ``step`` a run."""
    hits: dict[str, list[bool]] = {"new": [], "old": []}
    for k in range(sims):
        runs = series(np.random.default_rng([seed, k]), [0.1 + step * i for i in range(4)], [1.0] * 4, s)
        found = verdicts(claim(runs, s, seed + k))
        for key in hits:
            hits[key].append(found[key] == "supported")
    return {key: rate(v) for key, v in hits.items()}


def _show(name: str, value: tuple[float, float]) -> str:
    return f"{name} {value[0]:.3f} ± {value[1]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--bootstraps", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=16)
    args = parser.parse_args()
    s = Setting(tasks=args.tasks, bootstraps=args.bootstraps)
    print(f"{args.sims} simulations, {s.tasks} tasks in {s.phenomena} phenomena, {s.bootstraps} bootstraps (± MC se)")
    found = null_rates(args.sims, s)
    print("null, 4 runs: supported", _show("new", found["new"]), "|", _show("old", found["old"]))
    found = null_rates(args.sims, s, sort=True)
    print("null, runs sorted by Mantel r: supported", _show("new", found["new"]), "|", _show("old", found["old"]))
    found = unequal_noise_rates(args.sims, s)
    print("no trend, noise falling: supported", _show("raw", found["raw"]), "|", _show("corrected", found["corrected"]))
    print("coverage of the step difference's 95% interval:", _show("", coverage(args.sims, s)))
    found = power(args.sims, s)
    print("power, signal +0.5 a run: supported", _show("new", found["new"]), "|", _show("old", found["old"]))


if __name__ == "__main__":
    main()
