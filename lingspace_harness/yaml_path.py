"""The packaged lm-eval task YAMLs (the project's ``task_yaml/``) and their local-data variant."""
from __future__ import annotations

import shutil
from pathlib import Path

from .errors import DataError


def yaml_path() -> Path:
    """The directory of the lm-eval task YAMLs; pass it to ``lm_eval --include_path``."""
    import lingspace_harness_yaml

    return Path(lingspace_harness_yaml.__file__).parent


def write_local_yaml(data_dir: Path, out: Path) -> int:
    """Copy the BLiMP task YAMLs to ``out`` with each leaf reading ``data_dir/<UID>.jsonl``.

    The paths are absolute, because lm-eval resolves ``data_files`` against the working
    directory. Returns the number of task leaves written.
    """
    source = yaml_path() / "blimp"
    leaves = sorted(source.glob("lingspace_blimp_*.yaml"))
    missing = [p.stem.removeprefix("lingspace_blimp_") for p in leaves
               if not (data_dir / f"{p.stem.removeprefix('lingspace_blimp_')}.jsonl").is_file()]
    if missing:
        raise DataError(f"{data_dir} lacks {len(missing)} BLiMP file(s), e.g. {missing[0]}.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("_template_yaml", "_lingspace_blimp.yaml", "utils.py"):
        shutil.copyfile(source / name, out / name)
    for path in leaves:
        uid = path.stem.removeprefix("lingspace_blimp_")
        data = (data_dir / f"{uid}.jsonl").resolve()
        text = path.read_text().replace(
            f"dataset_name: {uid}\n",
            f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    train: {data}\n")
        (out / path.name).write_text(text)
    return len(leaves)
