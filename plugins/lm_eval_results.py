"""The ``lm_eval`` reporter: the accuracy part of a run in lm-eval's results schema
(``results``, ``configs``, ``versions``, ``n-shot``, ``n-samples``, ``higher_is_better``),
written as ``DIR/results_lm_eval.json`` so that lm-eval's tooling can read it."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from lingspace_harness import RunResults, hookimpl

FILE = "results_lm_eval.json"


def _stderr(values: list[float]) -> float:
    """lm-eval's ``mean_stderr``: the sample standard deviation over sqrt(n)."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


class LmEvalResults:
    name = "lm_eval"
    description = f"{FILE}: per-task acc and margin in lm-eval's results schema"

    def report(self, results: dict[str, Any], out_dir: Path) -> list[Path]:
        run = RunResults.from_json(results)
        margins: dict[str, list[float]] = defaultdict(list)
        per_token = run.options("metric", "accuracy").get("normalise") == "tokens"
        with (out_dir / "pairs.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                margins[row["task"]].append(
                    row["logp_good"] / row["n_good"] - row["logp_bad"] / row["n_bad"]
                    if per_token
                    else row["logp_good"] - row["logp_bad"]
                )
        out: dict[str, Any] = {
            "results": {},
            "configs": {},
            "versions": {},
            "n-shot": {},
            "n-samples": {},
            "higher_is_better": {},
        }
        for task, fields in run.tasks.items():
            m = margins[task]
            correct = [float(v > 0) for v in m]
            out["results"][task] = {
                "alias": task,
                "acc,none": fields["accuracy"],
                "acc_stderr,none": _stderr(correct),
                "margin,none": fields["margin"],
                "margin_stderr,none": _stderr(m),
            }
            out["configs"][task] = {
                "task": task,
                "output_type": "multiple_choice",
                "test_split": "test",
                "num_fewshot": 0,
                "metadata": {
                    "phenomenon": fields["phenomenon"],
                    "field": fields["field"],
                    "source": fields.get("source"),
                    "seed": run.config["seed"],
                },
            }
            out["versions"][task] = 1.0
            out["n-shot"][task] = 0
            out["n-samples"][task] = {"original": fields["n_test"], "effective": len(m)}
            out["higher_is_better"][task] = {"acc": True, "margin": True}
        model = run.model or {}
        out["config"] = {
            "model": model["name"],
            "model_args": model,
            "batch_size": run.config["batch_size"],
            "device": model["device"],
        }
        path = out_dir / FILE
        path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        return [path]


@hookimpl
def lingspace_register_reporters(register):
    register(LmEvalResults())
