"""Fingerprints: digests of what a run's numbers depend on (its pairs and its model).

Unit keys and results.json carry them, so a result is never served for other data or
another model than the one it was computed from, whatever the files are called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .tasks import task_delimiter

#: Bump when the stored form of units changes: older units are then recomputed, not read.
UNIT_FORMAT = 4


def digest(value: Any) -> str:
    """sha256 (hex, 16 characters) of a JSON-able value, keys sorted."""
    blob = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def task_fingerprint(data: Any) -> str:
    """A task's split pairs (ids and sentences of train, validation and test, in order) and,
    unless it is a space, the delimiter its sentences are scored after."""
    value: dict[str, Any] = {
        split: [[p.pair_id, p.good, p.bad] for p in data.split(split)] for split in ("train", "validation", "test")
    }
    delimiter = task_delimiter(getattr(data, "task", None))
    if delimiter != " ":  # a space leaves the fingerprints of earlier runs as they were
        value["delimiter"] = delimiter
    return digest(value)


def data_fingerprints(data: Mapping[str, Any]) -> dict[str, str]:
    """Task name -> fingerprint of its split pairs."""
    return {name: task_fingerprint(d) for name, d in data.items()}


def model_fingerprint(loaded: Any) -> str:
    """The loader's own identity of the model (e.g. a GGUF file's sha256) if it gives one, else a
    digest of every parameter's bytes (and, for a model that only scores, its name); followed by
    ``@commit`` for a hub model whose revision resolved to one (its tokenizer and config too)."""
    given = getattr(loaded, "fingerprint", None)
    if given:
        return str(given)
    commit = getattr(loaded, "commit", None)
    at = f"@{commit}" if commit else ""  # none for local models: their fingerprints stay as they were
    if loaded.model is None:
        return "name:" + digest([loaded.name, loaded.revision, loaded.loader]) + at
    import torch

    h = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, tensor in list(loaded.model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return "params:" + h.hexdigest() + at
