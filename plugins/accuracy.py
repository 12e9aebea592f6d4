"""The ``accuracy`` metric: per task, the share of test pairs with log p(good) > log p(bad)
and the mean margin log p(good) - log p(bad)."""
from __future__ import annotations

from lingspace_harness import MetricResult, RunContext, hookimpl


class Accuracy:
    name = "accuracy"
    description = "test-split accuracy (good > bad) and mean log-prob margin per task (in every run)"
    always = True

    def compute(self, ctx: RunContext) -> MetricResult:
        fields = {}
        for task, scores in ctx.scores("test").items():
            margins = [s.margin for s in scores]
            fields[task] = {"accuracy": sum(m > 0 for m in margins) / len(margins),
                            "margin": sum(margins) / len(margins)}
        return MetricResult(task_fields=fields)

    def summary(self, results: dict) -> str | None:
        accs = [t["accuracy"] for t in results["tasks"].values() if "accuracy" in t]
        return f"mean accuracy {sum(accs) / len(accs):.4f}" if accs else None


@hookimpl
def lingspace_register_metrics(register):
    register(Accuracy())
