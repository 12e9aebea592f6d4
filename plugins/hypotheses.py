"""Built-in hypothesis spaces: shared labels (``phenomenon``, ``field``, ``group``) and the
lexical-overlap control ``lexical``.

Each reads per-task fields of results.json. A task without the field gets a missing (NaN)
row, so tests run on the tasks that have it; with fewer than 2 such tasks the hypothesis
does not apply (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import hookimpl


def _fields(tasks: list[str], results: dict[str, Any], key: str) -> list[Any]:
    info = results.get("tasks", {})
    return [info.get(t, {}).get(key) for t in tasks]


def _restrict(matrix: np.ndarray, present: np.ndarray) -> np.ndarray | None:
    if present.sum() < 2:
        return None
    matrix[~present, :] = np.nan
    matrix[:, ~present] = np.nan
    return matrix


class SameLabel:
    """1 where two tasks share ``results["tasks"][t][key]``, else 0."""

    def __init__(self, key: str, description: str) -> None:
        self.name = key
        self.key = key
        self.description = description

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> np.ndarray | None:
        labels = _fields(tasks, results, self.key)
        present = np.array([v is not None for v in labels], dtype=bool)
        same = np.array([[float(a == b) for b in labels] for a in labels]).reshape(len(tasks), len(tasks))
        return _restrict(same, present)


class Lexical:
    """Jaccard similarity of the tasks' vocabularies (``results["tasks"][t]["vocabulary"]``: the
    word types of the task's test pairs). A control: a space that only tracks shared words
    correlates with it."""

    name = "lexical"
    description = "lexical-overlap control: Jaccard similarity of the tasks' test-pair vocabularies"

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> np.ndarray | None:
        vocab = [set(v) if v is not None else None for v in _fields(tasks, results, "vocabulary")]
        n = len(tasks)
        out = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                a, b = vocab[i], vocab[j]
                if a is not None and b is not None:
                    union = len(a | b)
                    out[i, j] = out[j, i] = len(a & b) / union if union else 1.0
        return _restrict(out, np.array([v is not None for v in vocab], dtype=bool))


@hookimpl
def lingspace_register_hypotheses(register):
    register(SameLabel("phenomenon", "1 for tasks of the same phenomenon, else 0"))
    register(SameLabel("field", "1 for tasks of the same linguistic field, else 0"))
    register(SameLabel("group", "1 for tasks in the same BLiMP paper group (12 groups), else 0"))
    register(Lexical())
