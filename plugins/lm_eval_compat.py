"""Everything the lm-eval plugins take from lm-eval, through its public API only (tested on
lm-eval 0.4.13 and 0.5.0.dev1): registry priming, the task catalogue, building tasks, what
precedes a choice it scores, the LM registry and requests. When lm-eval changes, this is the
one module to adapt.

lm-eval's task index lives in private modules (0.5 also hides ``TaskManager.task_index``),
so the catalogue reads the task YAMLs itself, as plain YAML, the way lm-eval indexes them.

Where 0.4 and 0.5 differ for us:

- 0.5 adds a task's ``target_delimiter`` only between a non-empty context and a choice, so
  after an empty context it scores each choice as written (0.4: after the delimiter, a space
  by default); see :func:`choice_delimiter`.
- 0.5's ``Instance`` needs ``task_name`` and ``doc_id`` (0.4 fills them from ``metadata``);
  :func:`loglikelihood_requests` gives both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any


def prime_registries() -> None:
    """Fill lm-eval's metric, filter and model registries; call before building tasks or LMs."""
    import lm_eval.api.metrics  # noqa: F401
    import lm_eval.filters  # noqa: F401
    import lm_eval.models  # noqa: F401


@lru_cache(maxsize=1)
def version() -> tuple[int, int]:
    """The installed lm-eval's (major, minor) version."""
    import lm_eval

    found = re.match(r"(\d+)\.(\d+)", lm_eval.__version__)
    if found is None:
        raise RuntimeError(f"cannot read lm-eval's version {lm_eval.__version__!r}")
    return int(found[1]), int(found[2])


def choice_delimiter(target_delimiter: str) -> str:
    """What the installed lm-eval puts before each choice it scores after an empty context:
    the task's ``target_delimiter`` up to 0.4, nothing from 0.5 on."""
    return target_delimiter if version() < (0, 5) else ""


IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
#: The task name on our loglikelihood requests.
TASK_NAME = "lingspace"


@lru_cache(maxsize=1)
def _yaml_loader() -> Any:
    """A safe YAML loader that keeps ``!function x`` (and any other tag) as its plain value."""
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def plain(loader: Any, _suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        return (
            loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)
        )

    Loader.add_multi_constructor("!", plain)
    return Loader


def yaml_errors() -> tuple[type[BaseException], ...]:
    """What ``read_task_yaml`` raises for a file it cannot read as a task YAML."""
    import yaml

    return (OSError, ValueError, TypeError, yaml.YAMLError)


def read_task_yaml(path: Path, _seen: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """A task or group YAML as lm-eval reads it unresolved: ``include`` files merged (the
    file's own keys win, an included ``task_list`` dropped), ``!function`` kept as text."""
    import yaml

    path = path.expanduser().resolve()
    if path in _seen:
        raise ValueError(f"include cycle at {path}")
    with path.open("rb") as handle:
        cfg = yaml.load(handle, Loader=_yaml_loader())  # noqa: S506 (a safe loader)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(cfg).__name__}")
    includes = cfg.pop("include", None)
    if includes is None:
        return cfg
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        included = read_task_yaml(path.parent / inc, _seen | {path})
        included.pop("task_list", None)
        merged.update(included)
    return {**merged, **cfg}


class Catalog:
    """The tasks, groups and tags of lm-eval task YAMLs under some directories (and maybe
    lm-eval's own), read as lm-eval indexes them: a later directory's name wins over an
    earlier one's, within one directory the first file (in path order) wins.

    ``config(name)`` is a task's or group's raw YAML, ``yaml_path(name)`` its file.
    """

    def __init__(self, paths: Sequence[Path], defaults: bool) -> None:
        roots = [Path(p) for p in paths]
        if defaults:
            from lm_eval import tasks as own_tasks

            roots.insert(0, Path(own_tasks.__file__).parent)
        self._files: dict[str, tuple[Path, dict[str, Any]]] = {}
        kinds: dict[str, str] = {}
        members: dict[str, set[str]] = {}
        for root in roots:
            here: dict[str, tuple[str, Path, dict[str, Any]]] = {}
            for path in sorted(root.glob("**/*.yaml"), key=lambda p: p.as_posix()):
                if IGNORED_DIRS.isdisjoint(path.parts):
                    _index_file(path, here)
            for name, (kind, path, cfg) in here.items():
                kinds[name], self._files[name] = kind, (path, cfg)
        for name, kind in list(kinds.items()):
            tags = self._files[name][1].get("tag") if kind == "task" else None
            for tag in [tags] if isinstance(tags, str) else tags or []:
                if kinds.setdefault(tag, "tag") == "tag":
                    members.setdefault(tag, set()).add(name)
        self.tasks = frozenset(n for n, k in kinds.items() if k == "task")
        self.groups = frozenset(n for n, k in kinds.items() if k == "group")
        self.tags = frozenset(n for n, k in kinds.items() if k == "tag")
        self._members = members
        self.names = sorted(kinds)

    def __contains__(self, name: object) -> bool:
        return name in self.tasks or name in self.groups or name in self.tags

    def config(self, name: str) -> dict[str, Any]:
        return self._files[name][1] if name in self._files else {}

    def yaml_path(self, name: str) -> Path | None:
        return self._files[name][0] if name in self._files else None

    def tag_members(self, tag: str) -> list[str]:
        """The tasks carrying ``tag``."""
        return sorted(self._members.get(tag, ()))

    def defined_in(self, path: Path) -> list[str]:
        """The tasks and groups whose YAML is the file ``path``."""
        path = path.resolve()
        return sorted(n for n, (p, _cfg) in self._files.items() if p.resolve() == path)

    def build(self, name: str) -> Any:
        """The built lm-eval ``Task`` (its dataset loaded), from its own YAML file."""
        from lm_eval.tasks import TaskManager

        prime_registries()
        manager = TaskManager(include_defaults=False)  # an empty index: the file says it all
        built = manager.load([str(self._files[name][0])])["tasks"]
        return built[name]


def _index_file(path: Path, here: dict[str, tuple[str, Path, dict[str, Any]]]) -> None:
    """Add the task or group that ``path`` defines, unless this directory has it already."""
    try:
        cfg = read_task_yaml(path)
    except yaml_errors():  # lm-eval skips unreadable files too
        return
    if "class" in cfg or ("group" not in cfg and "task" in cfg):
        name, kind = cfg.get("task"), "task"
    elif "group" in cfg:
        name, kind = cfg["group"], "group"
    else:
        return
    if isinstance(name, str) and name not in here:
        here[name] = (kind, path, cfg)


def model_class(name: str) -> Any:
    """The lm-eval LM class registered as ``name``; ``KeyError`` if none."""
    from lm_eval.api.registry import get_model

    prime_registries()
    try:
        return get_model(name)
    except (ValueError, KeyError) as exc:
        raise KeyError(name) from exc


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

    # keywords only: 0.5 adds required fields (task_name, doc_id) that 0.4 fills from metadata
    return [
        Instance(
            request_type="loglikelihood",
            doc={},
            arguments=pair,
            idx=i,
            task_name=TASK_NAME,
            doc_id=i,
            metadata=(TASK_NAME, i, 1),
        )
        for i, pair in enumerate(pairs)
    ]
