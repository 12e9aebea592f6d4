"""Built-in hypothesis spaces: shared labels (``phenomenon``, ``field``, ``group``), the
lexical-overlap controls ``lexical-tokens`` (the model's subword token types, the default) and
``lexical`` (word types), and the nesting of label hypotheses.

Each reads per-task fields of results.json. A task without the field gets a missing (NaN)
row, so tests run on the tasks that have it; with fewer than 2 such tasks the hypothesis
does not apply (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import hookimpl

from .claim_statistics import is_binary


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


class Jaccard:
    """Jaccard similarity of the sets in ``results["tasks"][t][key]`` (a control: a space that
    only tracks shared material correlates with it)."""

    def __init__(self, name: str, key: str, description: str) -> None:
        self.name, self.key, self.description = name, key, description

    def matrix(self, tasks: list[str], results: dict[str, Any]) -> np.ndarray | None:
        sets = [set(v) if v is not None else None for v in _fields(tasks, results, self.key)]
        n = len(tasks)
        out = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                a, b = sets[i], sets[j]
                if a is not None and b is not None:
                    union = len(a | b)
                    out[i, j] = out[j, i] = len(a & b) / union if union else 1.0
        return _restrict(out, np.array([v is not None for v in sets], dtype=bool))


#: The controls, the default first: the model's own subword token types, then word types.
CONTROLS = ("lexical-tokens", "lexical")
#: Two labels whose same-label pair sets have at least this Jaccard are near-duplicates.
NEAR_DUPLICATE = 0.8


def _relation(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """How the same-label pair sets of two binary hypotheses relate, over the task pairs (upper
    triangle) defined in both."""
    rows, cols = np.triu_indices(len(a), 1)
    x, y = a[rows, cols], b[rows, cols]
    ok = ~np.isnan(x) & ~np.isnan(y)
    sa, sb = x[ok] == 1, y[ok] == 1
    union = int((sa | sb).sum())
    return {
        "n_pairs": int(ok.sum()),
        "same": [int(sa.sum()), int(sb.sum())],
        "jaccard": int((sa & sb).sum()) / union if union else None,
        "first_in_second": bool(sa.any() and not (sa & ~sb).any()),
        "second_in_first": bool(sb.any() and not (sb & ~sa).any()),
    }


def nesting(hyps: dict[str, np.ndarray]) -> dict[str, Any]:
    """The nesting of the binary hypotheses among ``hyps``: A is nested in B when every same-A
    pair is a same-B pair (and B has more). ``pairs`` gives every two labels' relation;
    ``nested`` the (lower, higher) pairs; ``duplicates`` labels with the same pair sets;
    ``near_duplicates`` those others whose pair sets' Jaccard is at least ``NEAR_DUPLICATE``."""
    binary = [name for name, m in hyps.items() if name not in CONTROLS and is_binary(m)]
    out: dict[str, Any] = {"labels": binary, "near_duplicate_jaccard": NEAR_DUPLICATE}
    out.update(pairs=[], nested=[], duplicates=[], near_duplicates=[])
    for i, a in enumerate(binary):
        for b in binary[i + 1 :]:
            rel = {"labels": [a, b], **_relation(hyps[a], hyps[b])}
            out["pairs"].append(rel)
            forward, backward = rel["first_in_second"], rel["second_in_first"]
            if forward and backward:
                out["duplicates"].append([a, b])
            elif forward or backward:
                out["nested"].append({"lower": a, "higher": b} if forward else {"lower": b, "higher": a})
            if not (forward and backward) and (rel["jaccard"] or 0) >= NEAR_DUPLICATE:
                out["near_duplicates"].append([a, b])
    return out


@hookimpl
def lingspace_register_hypotheses(register):
    register(SameLabel("phenomenon", "1 for tasks of the same phenomenon, else 0"))
    register(SameLabel("field", "1 for tasks of the same linguistic field, else 0"))
    register(SameLabel("group", "1 for tasks in the same BLiMP paper group (12 groups), else 0"))
    register(
        Jaccard(
            "lexical-tokens",
            "token_types",
            "lexical-overlap control over the model's own tokens: Jaccard similarity of the token-id "
            "sets of the tasks' test-pair sentences",
        )
    )
    register(
        Jaccard(
            "lexical", "vocabulary", "lexical-overlap control: Jaccard similarity of the tasks' test-pair word types"
        )
    )
