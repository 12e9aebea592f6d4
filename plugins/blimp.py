"""BLiMP: the 67 paradigms as tasks ``blimp_<UID>``.

The task list and labels come from the packaged lm-eval YAML leaves. Pairs come from the
hub (``nyu-mll/blimp`` at ``HUB_REVISION``) by default, or from a directory of the official
``<UID>.jsonl`` files given by ``--data-dir`` or ``LINGSPACE_BLIMP_DIR``. A task's source
says which: ``blimp:local:<resolved dir>`` or ``blimp:hub:nyu-mll/blimp@<revision>``.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

import yaml

from lingspace_harness import DataError, DataOptions, MinimalPair, Task, hookimpl
from lingspace_harness.pairs import pairs_from_rows, read_jsonl

from .blimp_yaml import yaml_path

HUB_DATASET = "nyu-mll/blimp"
HUB_REVISION = "main"
ENV_DIR = "LINGSPACE_BLIMP_DIR"
#: Rows in each official BLiMP paradigm file; a shorter local file is used, with a warning.
OFFICIAL_ROWS = 1000

log = logging.getLogger("lingspace_harness")


def data_dir(options: DataOptions) -> Path | None:
    if options.data_dir is not None:
        return Path(options.data_dir)
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else None


def source_of(options: DataOptions) -> str:
    """Where the pairs come from under ``options``: the resolved local directory, or the hub."""
    local = data_dir(options)
    if local is not None:
        return f"blimp:local:{local.resolve()}"
    return f"blimp:hub:{HUB_DATASET}@{HUB_REVISION}"


def load_paradigm(uid: str, options: DataOptions) -> list[MinimalPair]:
    local = data_dir(options)
    if local is not None:
        path = local / f"{uid}.jsonl"
        if not path.is_file():
            raise DataError(f"{path} not found: the BLiMP data directory must hold the official <UID>.jsonl files")
        rows = list(read_jsonl(path))
        if len(rows) < OFFICIAL_ROWS:
            log.warning(
                "%s: %d rows, fewer than the official BLiMP paradigm's %s (a truncated or edited copy?)",
                path,
                len(rows),
                f"{OFFICIAL_ROWS:,}",
            )
        return pairs_from_rows(rows, str(path))
    return _from_hub(uid)


def _from_hub(uid: str) -> list[MinimalPair]:
    try:
        import datasets

        rows = datasets.load_dataset(HUB_DATASET, uid, split="train", revision=HUB_REVISION)
    except Exception as exc:  # datasets' hub and cache errors have no common base; -v shows it
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not load BLiMP paradigm {uid!r} from the Hugging Face hub ({HUB_DATASET}): "
            f"{reason}. Offline? Pass --data-dir DIR or set {ENV_DIR} to a directory of the "
            f"official BLiMP <UID>.jsonl files"
        ) from exc
    return pairs_from_rows(enumerate(rows, start=1), f"{HUB_DATASET}/{uid}")


@hookimpl
def lingspace_register_phenomena(register):
    source = source_of(DataOptions())  # where the pairs come from when no --data-dir is given
    for leaf in sorted((yaml_path() / "blimp").glob("lingspace_blimp_*.yaml")):
        spec = yaml.safe_load(leaf.read_text(encoding="utf-8"))
        uid, meta = spec["dataset_name"], spec["metadata"]
        register(
            Task(
                name=f"blimp_{uid}",
                phenomenon=meta["phenomenon"],
                field=meta["field"],
                group=meta["group"],
                source=source,
                source_for=source_of,
                load=partial(load_paradigm, uid),
                description=f"BLiMP paradigm {uid}",
            )
        )
