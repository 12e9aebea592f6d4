"""Model loaders: ``hf`` (hub id or local directory) and ``gguf`` (a .gguf file,
dequantised once into a cache so that later loads take about a second).

``--device-map``, ``--attn-implementation`` and ``--trust-remote-code`` go to ``from_pretrained``
(a model placed by a device map is not moved to ``--device``). ``gguf`` loads its dequantised
copy with the first two and refuses ``--trust-remote-code``: transformers reads a GGUF file
with its own code, so there is no repository code to trust."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lingspace_harness import LoadedModel, ModelError, ModelOptions, hookimpl
from lingspace_harness.errors import error_reason

DTYPES = ("float32", "float64", "bfloat16", "float16", "auto")
log = logging.getLogger("lingspace_harness")


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
    model: Any,
    tokenizer: Any,
    name: str,
    revision: str | None,
    options: ModelOptions,
    loader: str,
    commit: str | None = None,
) -> LoadedModel:
    """The loaded model on ``options.device`` (under ``--device-map`` it stays where the map put
    it, and its first parameter's device is recorded), in eval mode."""
    device = options.device
    if options.device_map:
        device = str(model.device)  # its first parameter's: where inputs go
    else:
        try:
            model = model.to(options.device)
        except (RuntimeError, AssertionError) as exc:
            raise ModelError(f"cannot move the model to device {options.device!r}: {error_reason(exc)}") from exc
    model.eval()
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return LoadedModel(model, tokenizer, name, revision, dtype, device, loader, commit=commit)


def _device_map(value: str) -> Any:
    """``--device-map``: a JSON object (module name -> device), else a string as it is (e.g. ``auto``)."""
    if not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ModelError(f"--device-map {value!r} is not a JSON object: {exc}") from exc


def load_arguments(options: ModelOptions) -> dict[str, Any]:
    """What ``from_pretrained`` gets from the run options besides the revision: the dtype, and
    ``--device-map``, ``--attn-implementation`` and ``--trust-remote-code`` where given."""
    given = {
        "device_map": _device_map(options.device_map) if options.device_map else None,
        "attn_implementation": options.attn_implementation,
        "trust_remote_code": options.trust_remote_code or None,
    }
    return {"dtype": _torch_dtype(options.dtype), **{k: v for k, v in given.items() if v is not None}}


def hub_commit(repo: str, revision: str | None) -> str | None:
    """The commit that ``revision`` of hub repository ``repo`` (default: its main branch) resolves
    to, from the hub or, offline, the cache; None where neither says (loading then fails with the
    reason, or loads without a recorded commit)."""
    from huggingface_hub import HfApi, constants

    try:
        resolved = HfApi().resolve_revision(repo, revision=revision, local_files_only=constants.HF_HUB_OFFLINE)
    except Exception as exc:  # not found, unreachable, an older huggingface_hub: from_pretrained says which
        log.debug("could not resolve revision %s of %s: %s", revision, repo, error_reason(exc))
        return None
    return getattr(resolved, "resolved", None)


def _looks_local(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep == "\\" and "\\" in spec


class HFLoader:
    name = "hf"
    description = "a Hugging Face hub id (at a revision: MODEL@REVISION, its commit recorded) or a local directory"

    def claims(self, spec: str) -> bool:
        return not spec.lower().endswith(".gguf")

    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        path, commit = Path(spec).expanduser(), None
        if path.exists():
            if options.revision:  # from_pretrained would read the directory as it is
                raise ModelError(f"--revision does not apply to a local model directory ({spec})")
            if not (path / "config.json").is_file():
                raise ModelError(f"{spec} is not a model directory (no config.json)")
            spec = str(path)
        elif _looks_local(spec):
            raise ModelError(f"model directory not found: {spec}")
        else:  # tokenizer and weights come from the one commit recorded
            commit = hub_commit(spec, options.revision)
        try:
            remote = {"trust_remote_code": True} if options.trust_remote_code else {}
            tokenizer = AutoTokenizer.from_pretrained(spec, revision=commit or options.revision, **remote)
            model = AutoModelForCausalLM.from_pretrained(
                spec, revision=commit or options.revision, **load_arguments(options)
            )
        except ModelError:
            raise
        except Exception as exc:  # transformers raises many types for a bad model; -v shows which
            raise ModelError(
                f"could not load model {spec!r}"
                f"{f' at revision {options.revision!r}' if options.revision else ''}: "
                f"{error_reason(exc)}"
            ) from exc
        return _finish(model, tokenizer, spec, options.revision, options, self.name, commit)


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
        if options.trust_remote_code:  # transformers reads a GGUF with its own code, never a repository's
            raise ModelError("--trust-remote-code does not apply to a GGUF file (it runs no repository code)")
        digest = file_digest(path)
        cache_root = options.cache_dir or Path(tempfile.gettempdir()) / "lingspace_harness"
        cached = cache_root / "gguf" / digest[:16]
        if not (cached / "config.json").is_file():
            self._dequantise(path, cached)
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, **load_arguments(options))
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
