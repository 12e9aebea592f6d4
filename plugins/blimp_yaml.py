"""BLiMP as lm-eval tasks: the packaged task YAMLs (the project's ``task_yaml/``), their
local-data variant, and the ``yaml-path`` command."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lingspace_harness import DataError, Registries, UserError, hookimpl


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
    missing = [
        p.stem.removeprefix("lingspace_blimp_")
        for p in leaves
        if not (data_dir / f"{p.stem.removeprefix('lingspace_blimp_')}.jsonl").is_file()
    ]
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
            f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    train: {data}\n",
        )
        (out / path.name).write_text(text)
    return len(leaves)


class YamlPathCommand:
    name = "yaml-path"
    help = "print the directory of the lm-eval task YAMLs (or write a local-data copy)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data-dir", type=Path, help="BLiMP <UID>.jsonl files for a local-data copy")
        parser.add_argument("--write", type=Path, metavar="DIR", help="where to write the local-data copy")

    def run(self, args: argparse.Namespace, harness: Registries) -> int:
        if (args.data_dir is None) != (args.write is None):
            raise UserError("yaml-path: --data-dir and --write go together")
        if args.write is None:
            print(yaml_path())
            return 0
        write_local_yaml(args.data_dir, args.write)
        print(args.write.resolve())
        return 0


@hookimpl
def lingspace_register_commands(register):
    register(YamlPathCommand())
