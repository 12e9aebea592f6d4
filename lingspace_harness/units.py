"""Units of work saved under the output directory, addressed by their full key.

A unit (one task's gradient, one tuned model's row of evaluations) is written atomically
once finished, with its key (data and model fingerprints, settings, unit format) beside it;
a rerun finds it and skips the work only if the stored key equals the one asked for, so a
unit is never served for other data, another model or other settings. A run killed midway
loses at most the unit in progress.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .results import atomic_open

UNITS_DIR = "units"


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class UnitStore:
    """Finished units of one kind (e.g. ``gradient-topk``) under ``out_dir/units/<kind>/``."""

    def __init__(self, out_dir: Path, kind: str, config: dict[str, Any]) -> None:
        self.dir = Path(out_dir) / UNITS_DIR / kind
        self.key = config_hash(config)
        self.config = config

    def path(self, unit: str, suffix: str) -> Path:
        return self.dir / f"{unit}-{self.key}{suffix}"

    def key_path(self, unit: str, suffix: str) -> Path:
        return self.dir / f"{unit}-{self.key}{suffix}.key.json"

    def has(self, unit: str, suffix: str) -> bool:
        """Whether the unit is stored under exactly this key (else it must be computed again)."""
        if not self.path(unit, suffix).is_file() or not self.key_path(unit, suffix).is_file():
            return False
        try:
            stored = json.loads(self.key_path(unit, suffix).read_text(encoding="utf-8"))
        except ValueError:
            return False
        return stored == json.loads(json.dumps(self.config, sort_keys=True, default=str))

    def _save_key(self, unit: str, suffix: str) -> None:
        data = json.dumps(self.config, sort_keys=True, default=str).encode()
        self._atomic(self.key_path(unit, suffix), lambda h: h.write(data))

    def _atomic(self, target: Path, write: Any) -> Path:
        with atomic_open(target, "wb") as handle:
            write(handle)
        return target

    def save_json(self, unit: str, value: Any) -> Path:
        data = json.dumps({"config": self.config, "value": value}, default=str).encode()
        path = self._atomic(self.path(unit, ".json"), lambda h: h.write(data))
        self._save_key(unit, ".json")
        return path

    def load_json(self, unit: str) -> Any:
        with self.path(unit, ".json").open(encoding="utf-8") as handle:
            return json.load(handle)["value"]

    def save_array(self, unit: str, array: np.ndarray) -> Path:
        path = self._atomic(self.path(unit, ".npy"), lambda h: np.save(h, array, allow_pickle=False))
        self._save_key(unit, ".npy")
        return path

    def load_array(self, unit: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.path(unit, ".npy"), mmap_mode="r" if mmap else None, allow_pickle=False)
