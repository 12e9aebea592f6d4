"""Space builders ``hypotheses``, ``generalisation``, ``reliability`` and ``agreement`` (in
space_agreement.py), and the ``analyse`` command that runs space builders on a finished run
directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, AnalysisOptions, DataError, Registries, hookimpl
from lingspace_harness.analysis import analyse
from lingspace_harness.arguments import comma_list, positive_int
from lingspace_harness.options import parsed_options, plugin_options
from lingspace_harness.results import read_results, write_results
from lingspace_harness.stats import (
    holm,
    is_symmetric,
    mantel,
    partial_mantel,
    split_half_reliability,
    symmetrise,
    within_between,
)

from .hypotheses import CONTROLS, nesting
from .space_agreement import Agreement

LABEL_KINDS = ("phenomenon", "field", "group")


def _spaces(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """results["spaces"], each checked to hold an N x N numeric matrix over its N tasks."""
    spaces = results.get("spaces", {})
    for metric, space in spaces.items():
        n = len(space.get("tasks", []))
        try:
            shape = np.array(space.get("matrix"), dtype=float).shape
        except (TypeError, ValueError):
            shape = None
        if shape != (n, n):
            raise DataError(f"results.json: space {metric!r} needs a numeric {n}x{n} matrix over its {n} tasks")
    return spaces


class Hypotheses:
    name = "hypotheses"
    description = (
        "Mantel tests (Spearman, permutations) of every space against every hypothesis; "
        "asymmetric spaces are symmetrised, and each triangle is also tested; partial Mantel "
        "tests given the lexical controls and, for a label, given the labels nested in it; "
        "Holm-adjusted p over all of them"
    )

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for metric, space in _spaces(results).items():
            matrix = np.array(space["matrix"], dtype=float)
            hyps = ctx.hypotheses(space["tasks"], results)
            lower = lower_labels(hyps)
            out[metric] = {name: _tests(matrix, name, hyps, lower.get(name, []), ctx.options) for name in hyps}
        adjust_holm(out)
        return out


def _tests(
    matrix: np.ndarray, name: str, hyps: dict[str, np.ndarray], lower: list[str], o: AnalysisOptions
) -> dict[str, Any]:
    """The Mantel test of ``matrix`` against hypothesis ``name``, and beside it a partial Mantel
    test (Freedman-Lane) given each control and each label nested in ``name`` (``partial``)."""
    symmetric = is_symmetric(matrix)
    sym = matrix if symmetric else symmetrise(matrix)
    hyp = hyps[name]
    test = mantel(sym, hyp, permutations=o.permutations, seed=o.seed)
    givens = [c for c in CONTROLS if c in hyps and name not in CONTROLS] + lower
    if givens:  # the same test, controlling for shared words and tokens, and for lower labels
        test["partial"] = {
            c: partial_mantel(sym, hyp, hyps[c], permutations=o.permutations, seed=o.seed) for c in givens
        }
    test["symmetrised"] = not symmetric
    if not symmetric:
        for triangle in ("upper", "lower"):
            test[triangle] = mantel(matrix, hyp, permutations=o.permutations, seed=o.seed, triangle=triangle)
    return test


def lower_labels(hyps: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Higher label -> the labels nested in it (of two duplicate labels, the first only)."""
    nest = nesting(hyps)
    later = {b for _, b in nest["duplicates"]}
    out: dict[str, list[str]] = {}
    for rel in nest["nested"]:
        if rel["lower"] not in later:
            out.setdefault(rel["higher"], []).append(rel["lower"])
    return out


def adjust_holm(tests: dict[str, dict[str, Any]]) -> None:
    """Give every test of a run's hypotheses output (Mantel, triangle and partial Mantel) its
    Holm-adjusted p (``p_holm``) over all of them, and the family's size (``holm_family``:
    the tests with a defined p)."""
    family = []
    for by_hypothesis in tests.values():
        for test in by_hypothesis.values():
            family += [test, *(test[k] for k in ("upper", "lower") if k in test), *test.get("partial", {}).values()]
    adjusted = holm([t["p"] for t in family])
    size = sum(q is not None for q in adjusted)
    for test, q in zip(family, adjusted):
        test["p_holm"], test["holm_family"] = q, size


class Nesting:
    name = "nesting"
    description = "how the label hypotheses nest over the run's tasks (A in B: every same-A pair is a same-B pair)"

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        return nesting(ctx.hypotheses(list(results.get("tasks", {})), results))


class Generalisation:
    name = "generalisation"
    description = "mean similarity within against between phenomenon, field and group labels"

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        o = ctx.options
        info = results.get("tasks", {})
        out: dict[str, Any] = {}
        for metric, space in _spaces(results).items():
            out[metric] = {
                kind: within_between(
                    space["matrix"],
                    [info.get(t, {}).get(kind) for t in space["tasks"]],
                    permutations=o.permutations,
                    bootstraps=o.bootstraps,
                    seed=o.seed,
                )
                for kind in LABEL_KINDS
            }
        return out


class Reliability:
    name = "reliability"
    description = "split-half reliability (Spearman, and Spearman-Brown) of spaces that carry split_half"

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        out = {}
        for metric, space in _spaces(results).items():
            if "split_half" in space:
                halves = space["split_half"]
                reliability = split_half_reliability(halves["a"], halves["b"])
                out[metric] = {**reliability, "pairs_for_0.8": pairs_for(0.8, reliability["r"], halves)}
        return out


def pairs_for(target: float, r: float | None, halves: dict[str, Any]) -> float | None:
    """Training pairs per task that a full-data ceiling (``r_full``) of ``target`` would need, by
    Spearman-Brown from the split-half r at the halves' mean size: k = target (1 - r) / (r (1 - target))
    halves. None where r is not positive or the halves' sizes are not recorded."""
    sizes = halves.get("n_train")
    if r is None or r <= 0 or not sizes:
        return None
    return float(np.mean(sizes)) * target * (1 - r) / (r * (1 - target))


def _fmt(value: float | None, spec: str) -> str:
    return f"{'-':>7}" if value is None else format(value, spec)


class AnalyseCommand:
    name = "analyse"
    help = "test a run's task spaces against hypotheses, cluster them, and write results.json back"
    plugin_options = ("space_builder",)  # the builders' own options (TakesPluginOptions)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory", type=Path, metavar="DIR", help="a run's output directory")
        parser.add_argument(
            "--builders", type=comma_list, help="comma-separated space builders (default: all registered)"
        )
        parser.add_argument(
            "--permutations",
            type=positive_int,
            default=AnalysisOptions.permutations,
            help="permutations per test (default %(default)s)",
        )
        parser.add_argument(
            "--bootstraps",
            type=positive_int,
            default=AnalysisOptions.bootstraps,
            help="bootstrap resamples for confidence intervals (default %(default)s)",
        )
        parser.add_argument(
            "--hypothesis",
            dest="hypothesis_files",
            type=Path,
            action="append",
            default=[],
            metavar="FILE",
            help="a hypothesis file (CSV or JSON: a task matrix or a "
            "task,group grouping), named after its stem; repeatable",
        )
        parser.add_argument("--seed", type=int, default=AnalysisOptions.seed, help="seed (default 0)")

    def run(self, args: argparse.Namespace, harness: Registries) -> int:
        directory: Path = args.directory
        results = read_results(directory)  # refuses a missing file, or one that is not a run's
        options = AnalysisOptions(
            permutations=args.permutations,
            bootstraps=args.bootstraps,
            seed=args.seed,
            hypothesis_files=list(args.hypothesis_files),
            builders=args.builders,
            plugins={
                name: plugin_options(harness.space_builders.get(name), values, args.seed)
                for name, values in parsed_options(args).get("space_builder", {}).items()
            },
        )
        output = analyse(harness, results, options)
        results.setdefault("analysis", {}).update(output)
        path = write_results(directory, results)
        rows = [
            (space, hyp, test) for space, tests in output.get("hypotheses", {}).items() for hyp, test in tests.items()
        ]
        if rows:
            w1 = max(len("space"), *(len(r[0]) for r in rows))
            w2 = max(len("hypothesis"), *(len(r[1]) for r in rows))
            print(f"{'space':<{w1}}  {'hypothesis':<{w2}}  {'r':>7}  {'p':>7}  {'p Holm':>7}")
            for space, hyp, test in rows:
                notes = [test["reason"]] if test.get("reason") else []
                if test.get("n_undefined"):
                    notes.append(f"{test['n_undefined']} undefined pairs left out")
                note = f"  ({'; '.join(notes)})" if notes else ""
                r, p, q = (_fmt(test[k], f) for k, f in (("r", "7.3f"), ("p", "7.4f"), ("p_holm", "7.4f")))
                print(f"{space:<{w1}}  {hyp:<{w2}}  {r}  {p}  {q}{note}")
        print(f"wrote {', '.join(output) or 'nothing'} to {path}")
        return 0


@hookimpl
def lingspace_register_space_builders(register):
    register(Hypotheses())
    register(Nesting())
    register(Generalisation())
    register(Reliability())
    register(Agreement())


@hookimpl
def lingspace_register_commands(register):
    register(AnalyseCommand())
