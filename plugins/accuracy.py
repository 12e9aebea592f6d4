"""The ``accuracy`` metric: per task, the share of test pairs with log p(good) > log p(bad)
and the mean margin log p(good) - log p(bad)."""
from __future__ import annotations

from lingspace_harness import MetricResult, RunContext, hookimpl


class Accuracy:
    name = "accuracy"
    description = "test-split accuracy (good > bad) and mean log-prob margin per task"

    def compute(self, ctx: RunContext) -> MetricResult:
        fields = {}
        for task, scores in ctx.scores("test").items():
            margins = [s.margin for s in scores]
            fields[task] = {"accuracy": sum(m > 0 for m in margins) / len(margins),
                            "margin": sum(margins) / len(margins)}
        return MetricResult(task_fields=fields)


@hookimpl
def lingspace_register_metrics(register):
    register(Accuracy())
