"""Units of work saved under the output directory, keyed by a hash of their config.

A unit (one task's gradient, one tuned model's row of evaluations) is written atomically
once finished; a rerun with the same config finds it and skips the work. A run killed
midway therefore loses at most the unit in progress.
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

    def has(self, unit: str, suffix: str) -> bool:
        return self.path(unit, suffix).is_file()

    def _atomic(self, target: Path, write: Any) -> Path:
        with atomic_open(target, "wb") as handle:
            write(handle)
        return target

    def save_json(self, unit: str, value: Any) -> Path:
        data = json.dumps({"config": self.config, "value": value}).encode()
        return self._atomic(self.path(unit, ".json"), lambda h: h.write(data))

    def load_json(self, unit: str) -> Any:
        with self.path(unit, ".json").open(encoding="utf-8") as handle:
            return json.load(handle)["value"]

    def save_array(self, unit: str, array: np.ndarray) -> Path:
        return self._atomic(self.path(unit, ".npy"), lambda h: np.save(h, array, allow_pickle=False))

    def load_array(self, unit: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.path(unit, ".npy"), mmap_mode="r" if mmap else None, allow_pickle=False)
