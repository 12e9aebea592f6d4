"""Model loaders: ``hf`` (hub id or local directory) and ``gguf`` (a .gguf file,
dequantised once into a cache so that later loads take about a second)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lingspace_harness import LoadedModel, ModelError, ModelOptions, hookimpl
from lingspace_harness.errors import error_reason

DTYPES = ("float32", "float64", "bfloat16", "float16", "auto")


def _torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ModelError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return "auto" if name == "auto" else getattr(torch, name)


def quiet_transformers() -> None:
    """Keep transformers' progress bars off when stderr is not a terminal, and the hub
    client's retry chatter out of the way of our one error line (unless ``-v``)."""
    import logging
    import sys

    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    if logging.getLogger("lingspace_harness").getEffectiveLevel() > logging.INFO:
        hub_logging.set_verbosity_error()


def _finish(
    model: Any, tokenizer: Any, name: str, revision: str | None, options: ModelOptions, loader: str
) -> LoadedModel:
    try:
        model = model.to(options.device)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot move the model to device {options.device!r}: {error_reason(exc)}") from exc
    model.eval()
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return LoadedModel(model, tokenizer, name, revision, dtype, options.device, loader)


def _looks_local(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep == "\\" and "\\" in spec


class HFLoader:
    name = "hf"
    description = "a Hugging Face hub id (with --revision) or a local model directory"

    def claims(self, spec: str) -> bool:
        return not spec.lower().endswith(".gguf")

    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        path = Path(spec).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ModelError(f"{spec} is not a model directory (no config.json)")
            spec = str(path)
        elif _looks_local(spec):
            raise ModelError(f"model directory not found: {spec}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec, revision=options.revision)
            model = AutoModelForCausalLM.from_pretrained(
                spec, revision=options.revision, dtype=_torch_dtype(options.dtype)
            )
        except ModelError:
            raise
        except Exception as exc:  # transformers raises many types for a bad model; -v shows which
            raise ModelError(
                f"could not load model {spec!r}"
                f"{f' at revision {options.revision!r}' if options.revision else ''}: "
                f"{error_reason(exc)}"
            ) from exc
        return _finish(model, tokenizer, spec, options.revision, options, self.name)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class GGUFLoader:
    name = "gguf"
    description = "a .gguf file, dequantised to a cached transformers copy on first load"

    def claims(self, spec: str) -> bool:
        return spec.lower().endswith(".gguf")

    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {spec}")
        if options.revision:
            raise ModelError("--revision does not apply to a GGUF file")
        digest = file_digest(path)
        cache_root = options.cache_dir or Path(tempfile.gettempdir()) / "lingspace_harness"
        cached = cache_root / "gguf" / digest[:16]
        if not (cached / "config.json").is_file():
            self._dequantise(path, cached)
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=_torch_dtype(options.dtype))
        except Exception as exc:  # as above: the cause is kept for -v
            raise ModelError(
                f"could not load the cached copy of {spec} from {cached}: {error_reason(exc)}; "
                f"delete that directory to rebuild it"
            ) from exc
        return _finish(model, tokenizer, str(path), f"sha256:{digest}", options, self.name)

    @staticmethod
    def _dequantise(path: Path, target: Path) -> None:
        """Load the GGUF as dense float32 and save it; the rename makes the cache entry atomic."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils.quantization_config import GgufConfig

        try:
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
            )
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        except Exception as exc:  # the GGUF reader raises struct.error, ValueError, ...
            raise ModelError(f"could not load GGUF file {path}: {error_reason(exc)}") from exc
        model.hf_quantizer = None  # type: ignore[assignment]  # dense now: save it as a plain checkpoint
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "config.json").is_file():  # not merely lost a race
                raise


@hookimpl
def lingspace_register_model_loaders(register):
    register(HFLoader())
    register(GGUFLoader())
