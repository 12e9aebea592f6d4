"""A run's scores: each split's pair log-probs, stored per task as units and kept in memory
(shared by the run's data variants), and the scoring of any other pairs (uncached)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from .errors import UserError
from .models import LoadedModel
from .pairs import MinimalPair, PairScore
from .progress import progress_bar
from .protocols import RunContext
from .tasks import task_delimiter


class ScoreCache:
    """Each split's scores, once computed or read in this process."""

    def __init__(self) -> None:
        self._splits: dict[str, dict[str, list[PairScore]]] = {}

    def has(self, split: str) -> bool:
        return split in self._splits

    def scores(self, run: RunContext, split: str) -> dict[str, list[PairScore]]:
        """Log-probs of every pair of ``split`` in every task of ``run``, stored per task as units.
        Unless all are stored, every task is scored in one pass: the batch composition, and so
        every float, is then the same whichever process (or shard) scores them first."""
        if split not in self._splits:
            store = run.units(f"scores-{split}")
            if all(store.has(t, ".json") for t in run.task_names):
                scores = {t: [PairScore(**row) for row in store.load_json(t)] for t in run.task_names}
            else:
                scores = score_pairs(run, {t: d.split(split) for t, d in run.data.items()}, desc=f"scoring {split}")
                for task, rows in scores.items():
                    store.save_json(task, [asdict(s) for s in rows])
            self._splits[split] = scores
        return self._splits[split]


def delimiter(run: RunContext, task: str) -> str:
    """What ``task``'s sentences are scored after (a space for a task not in the run)."""
    return task_delimiter(run.data[task].task) if task in run.data else " "


def score_pairs(
    run: RunContext, pairs_by_task: Mapping[str, Sequence[MinimalPair]], desc: str = "scoring"
) -> dict[str, list[PairScore]]:
    """Score arbitrary pairs with the run's model and settings (uncached), each task's after its
    delimiter, with the number of tokens scored per sentence (None for a model that only scores)."""
    flat = [(t, p) for t, ps in pairs_by_task.items() for p in ps]
    sentences = [s for _, p in flat for s in (p.good, p.bad)]
    delimiters = [delimiter(run, t) for t, _ in flat for _ in range(2)]
    counts: list[int | None] = [None] * len(sentences)
    logps: Sequence[float]
    with progress_bar(len(sentences), desc, unit="sent") as bar:
        if run.model.scorer:
            logps = list(scorer_logprobs(run.model, sentences, delimiters))
            bar.update(len(sentences))
        else:
            scored, given = run.access.score_counted(sentences, progress=bar.update, delimiter=delimiters)
            logps, counts = [float(v) for v in scored], list(given)
    out: dict[str, list[PairScore]] = {t: [] for t in pairs_by_task}
    for k, (t, p) in enumerate(flat):
        out[t].append(
            PairScore(
                t,
                p.pair_id,
                p.good,
                p.bad,
                float(logps[2 * k]),
                float(logps[2 * k + 1]),
                counts[2 * k],
                counts[2 * k + 1],
            )
        )
    return out


def scorer_logprobs(model: LoadedModel, sentences: list[str], delimiters: list[str]) -> Sequence[float]:
    """A scoring-only model's log-probs: ``scorer(sentences)``, with ``delimiter=`` (one per
    sentence) only where a sentence is not scored after a space."""
    assert model.scorer is not None
    if all(d == " " for d in delimiters):
        return model.scorer(sentences)
    if "delimiter" not in inspect.signature(model.scorer).parameters:
        odd = next(d for d in delimiters if d != " ")
        raise UserError(
            f"--model {model.name} scores every sentence after a space; a task here needs the delimiter {odd!r}"
        )
    return model.scorer(sentences, delimiter=delimiters)
