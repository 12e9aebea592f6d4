"""The ``accuracy`` metric: per task, the share of test pairs with log p(good) > log p(bad)
and the mean margin log p(good) - log p(bad).

``--normalise tokens`` compares mean log-probs per token instead of sums (each sentence's
summed log-prob divided by its number of scored tokens): a longer sentence is no longer
penalised for its length alone, which is how several non-English BLiMP-style benchmarks'
authors score pairs whose sentences differ in length. The default, ``none``, is lm-eval's sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lingspace_harness import MetricResult, RunContext, UserError, hookimpl

NORMALISE = ("none", "tokens")


@dataclass(frozen=True)
class AccuracyOptions:
    normalise: str = "none"

    def __post_init__(self) -> None:
        if self.normalise not in NORMALISE:
            raise UserError(f"accuracy: normalise {self.normalise!r} is not one of {', '.join(NORMALISE)}")


class Accuracy:
    name = "accuracy"
    description = "test-split accuracy (good > bad) and mean log-prob margin per task (in every run)"
    always = True
    Options = AccuracyOptions

    def add_arguments(self, group: Any) -> None:
        group.add_argument(
            "--normalise",
            choices=NORMALISE,
            help="tokens: compare mean log-probs per token instead of summed log-probs (default none)",
        )

    def check(self, options: AccuracyOptions, scores_only: bool) -> None:
        if scores_only and options.normalise == "tokens":
            raise UserError(
                "--normalise tokens needs each sentence's token count, which a model that only scores does not give"
            )

    def compute(self, ctx: RunContext) -> MetricResult:
        per_token = ctx.options(self.name).normalise == "tokens"
        fields = {}
        for task, scores in ctx.scores("test").items():
            margins = [s.token_margin if per_token else s.margin for s in scores]
            if per_token and any(math.isnan(m) for m in margins):
                raise UserError(
                    f"--normalise tokens needs token counts, which --model {ctx.config.model} does not give"
                )
            fields[task] = {
                "accuracy": sum(m > 0 for m in margins) / len(margins),
                "margin": sum(margins) / len(margins),
            }
        return MetricResult(task_fields=fields)

    def summary(self, results: dict) -> str | None:
        accs = [t["accuracy"] for t in results["tasks"].values() if "accuracy" in t]
        return f"mean accuracy {sum(accs) / len(accs):.4f}" if accs else None


@hookimpl
def lingspace_register_metrics(register):
    register(Accuracy())
