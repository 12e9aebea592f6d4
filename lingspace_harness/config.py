"""A run's settings: the run-level options (``RunConfig``) and each plugin's own options."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .models import ModelOptions, split_revision
from .tasks import SPLIT_FRACTIONS

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["RECORDED_WHEN_SET", "cache_dir"]

#: Settings that say how units run, never what they compute; kept out of ``config`` in results.json.
EXECUTION_FIELDS = ("executor", "executor_options", "shard")
#: Settings recorded only where they differ from their defaults (added later: a run.json written
#: before them still equals the config that resumes it).
OMITTED_AT_DEFAULT = ("device_map", "attn_implementation", "trust_remote_code")
#: ``dataclasses.field(metadata=RECORDED_WHEN_SET)`` marks a plugin's option that run.json records
#: only where it differs from its default: an option added later leaves the runs recorded before
#: it resumable (see ``options.options_record``).
RECORDED_WHEN_SET = {"recorded": "when set"}
#: The executor that runs units one after another in the driver's process.
IN_PROCESS = "serial"


def cache_dir() -> Path:
    """Where dequantised models and other reusable artefacts live (``LINGSPACE_CACHE_DIR``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lingspace_harness"
    return Path(os.environ.get("LINGSPACE_CACHE_DIR", default))


@dataclass
class RunConfig:
    """A run's run-level options; recorded under ``config`` in results.json. Each plugin's own
    options (``add_arguments`` + ``Options``) are in ``options[plugin name]``. A revision given
    as ``model@revision`` is kept in ``revision``; a local model path with one is refused."""

    model: str
    tasks: list[str]
    metrics: list[str] = field(default_factory=list)
    output: Path = Path("out")
    data_dir: Path | None = None
    include_paths: list[Path] = field(default_factory=list)
    limit: int | None = None
    seed: int = 0
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    device: str = "cpu"
    dtype: str = "float32"
    revision: str | None = None
    batch_size: int | str = 128  # or "auto" (see ``batch_size``)
    prefix_token: str | None = None
    scoring: str = "auto"
    include_embeddings: bool = False
    split_half: bool = False
    reporters: list[str] = field(default_factory=list)
    analysis: list[str] | None = None
    permutations: int = 10000
    hypotheses: list[Path] = field(default_factory=list)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor: str = IN_PROCESS
    executor_options: dict[str, Any] = field(default_factory=dict)
    shard: tuple[int, int] | None = None
    device_map: str | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        """``--model MODEL@REVISION`` is ``--model MODEL --revision REVISION`` (see ``split_revision``)."""
        self.model, self.revision = split_revision(self.model, self.revision)

    def to_json(self) -> dict[str, Any]:
        """The settings that determine the results (execution settings are left out)."""
        out = asdict(self)
        for name in EXECUTION_FIELDS:
            del out[name]
        for name in OMITTED_AT_DEFAULT:
            if out[name] == self.__dataclass_fields__[name].default:
                del out[name]
        out["output"] = str(self.output)
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        out["hypotheses"] = [str(h) for h in self.hypotheses]
        out["include_paths"] = [str(p) for p in self.include_paths]
        out["split_fractions"] = list(self.split_fractions)
        return out

    def model_options(self) -> ModelOptions:
        """What the model loader gets: the run's model settings (``dataclasses.replace`` them for
        another model, e.g. its own revision)."""
        return ModelOptions(
            revision=self.revision,
            dtype=self.dtype,
            device=self.device,
            cache_dir=cache_dir(),
            batch_size=self.batch_size,
            device_map=self.device_map,
            attn_implementation=self.attn_implementation,
            trust_remote_code=self.trust_remote_code,
        )

    def execution_json(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "options": dict(self.executor_options),
            "shard": list(self.shard) if self.shard else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], execution: dict[str, Any] | None = None) -> RunConfig:
        """The inverse of ``to_json`` (plus ``execution_json``)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["output"] = Path(known["output"])
        known["data_dir"] = Path(known["data_dir"]) if known.get("data_dir") else None
        known["split_fractions"] = tuple(known.get("split_fractions", SPLIT_FRACTIONS))
        known["hypotheses"] = [Path(h) for h in known.get("hypotheses", [])]
        known["include_paths"] = [Path(p) for p in known.get("include_paths", [])]
        if execution:
            known["executor"] = execution.get("executor", IN_PROCESS)
            known["executor_options"] = dict(execution.get("options") or {})
            known["shard"] = tuple(execution["shard"]) if execution.get("shard") else None
        return cls(**known)
