"""Everything the lm-eval plugins take from lm-eval, through its public API only (tested on
lm-eval 0.4.13): registry priming, the task catalogue, building tasks, the LM registry and
requests. When lm-eval changes, this is the one module to adapt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def prime_registries() -> None:
    """Fill lm-eval's metric, filter and model registries; call before building tasks or LMs."""
    import lm_eval.api.metrics  # noqa: F401
    import lm_eval.filters  # noqa: F401
    import lm_eval.models  # noqa: F401


class Catalog:
    """lm-eval's task index (``TaskManager``) over some directories and maybe its own tasks.

    ``names`` are all tasks, groups and tags; ``config(name)`` is a task's or group's raw YAML
    (``!function`` unresolved, ``include`` merged), ``yaml_path(name)`` its file.
    """

    def __init__(self, paths: Sequence[Path], defaults: bool) -> None:
        from lm_eval.tasks import TaskManager

        prime_registries()
        self.manager = TaskManager(include_path=[str(p) for p in paths] or None, include_defaults=defaults)
        self._entries = self.manager.task_index
        self.tasks = frozenset(self.manager.all_subtasks)
        self.groups = frozenset(self.manager.all_groups)
        self.tags = frozenset(self.manager.all_tags)

    @property
    def names(self) -> list[str]:
        return list(self.manager.all_tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def config(self, name: str) -> dict[str, Any]:
        cfg = getattr(self._entries[name], "cfg", None)
        return cfg if isinstance(cfg, dict) else {}

    def yaml_path(self, name: str) -> Path | None:
        path = getattr(self._entries[name], "yaml_path", None)
        return Path(path) if path else None

    def tag_members(self, tag: str) -> list[str]:
        """The tasks carrying ``tag``."""
        return sorted(getattr(self._entries[tag], "tags", ()) or ())

    def defined_in(self, path: Path) -> list[str]:
        """The tasks and groups whose YAML is the file ``path``."""
        path = path.resolve()
        return sorted(n for n in self.tasks | self.groups
                      if (p := self.yaml_path(n)) is not None and p.resolve() == path)

    def build(self, name: str) -> Any:
        """The built lm-eval ``Task`` (its dataset loaded)."""
        return self.manager.load([name])["tasks"][name]


def model_class(name: str) -> Any:
    """The lm-eval LM class registered as ``name``; ``KeyError`` if none."""
    from lm_eval.api.registry import get_model

    prime_registries()
    try:
        return get_model(name)
    except (ValueError, KeyError):
        raise KeyError(name) from None


def model_names() -> list[str]:
    from lm_eval.api.registry import model_registry

    prime_registries()
    return list(model_registry.keys())


def parse_model_args(args: str) -> dict[str, Any]:
    """``lm_eval --model_args`` parsing: ``a=1,b=x`` to a dict."""
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(args)


def loglikelihood_requests(pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """lm-eval ``loglikelihood`` requests for (context, continuation) pairs."""
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
