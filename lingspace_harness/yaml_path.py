"""Where the packaged lm-eval task YAMLs (the project's ``task_yaml/``) are installed."""
from __future__ import annotations

from pathlib import Path


def yaml_path() -> Path:
    """The directory of the lm-eval task YAMLs; pass it to ``lm_eval --include_path``."""
    import lingspace_harness_yaml

    return Path(lingspace_harness_yaml.__file__).parent
