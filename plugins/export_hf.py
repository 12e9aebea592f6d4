"""The ``export-hf MODEL DIR`` command: a plain transformers directory (safetensors weights,
config, tokenizer) for any model a loader takes (a GGUF file, a hub id, a local directory),
so that ``lm_eval --model hf --model_args pretrained=DIR`` runs on it offline."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from lingspace_harness import Harness, ModelOptions, UserError, hookimpl
from lingspace_harness.config import cache_dir
from lingspace_harness.models import resolve_loader, split_revision

DTYPES = ("float32", "bfloat16", "float16")


def export_hf(
    harness: Harness, model: str, out: Path, revision: str | None = None, dtype: str = "float32", force: bool = False
) -> Path:
    """Load ``model`` with its loader and save it as a transformers directory ``out``; returns ``out``.

    The directory appears whole or not at all (it is written beside ``out``, then renamed).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"export-hf: {out} exists and is not empty (--force replaces it)")
    name, revision = split_revision(model, revision, what="export-hf:")
    loader, spec = resolve_loader(harness.model_loaders, name)
    loaded = loader.load(spec, ModelOptions(revision=revision, dtype=dtype, device="cpu", cache_dir=cache_dir()))
    if loaded.model is None or loaded.tokenizer is None:
        raise UserError(
            f"export-hf: the {loaded.loader!r} loader gives no transformers model and tokenizer to save for {model!r}"
        )
    if hasattr(loaded.model.config, "quantization_config"):
        raise UserError(f"export-hf: {model!r} is loaded quantised; only dense weights can be exported")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        loaded.model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        if not list(tmp.glob("*.safetensors")):
            raise UserError(f"export-hf: {model!r} was not saved as safetensors")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class ExportHFCommand:
    name = "export-hf"
    help = "save a model (GGUF file, hub id, directory) as a plain transformers directory for lm_eval --model hf"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "model",
            metavar="MODEL",
            help="what --model of run takes: a .gguf file, a hub id (MODEL@REVISION), a directory",
        )
        parser.add_argument("dir", type=Path, metavar="DIR", help="the directory to write")
        parser.add_argument("--revision", metavar="R", help="the hub revision (branch, tag, commit)")
        parser.add_argument("--dtype", choices=DTYPES, default="float32", help="the weights' dtype (default float32)")
        parser.add_argument("--force", action="store_true", help="replace DIR if it exists")

    def run(self, args: argparse.Namespace, harness: Harness) -> int:
        out = export_hf(harness, args.model, args.dir.expanduser(), args.revision, args.dtype, args.force)
        print(out)
        return 0


@hookimpl
def lingspace_register_commands(register):
    register(ExportHFCommand())
