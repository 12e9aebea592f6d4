"""lm-eval tasks as phenomena: the ``lm_eval`` task source.

``--tasks lm_eval:GLOB`` selects lm-eval tasks, groups (expanded to their leaves) and tags by
name; a spec ending in ``.yaml`` (or a directory path with a ``/``) names a task file, whose
directory is then searched too, or every task of a directory. Names are looked up in the
``--include-path`` directories; lm-eval's own ~14k task YAMLs are indexed only when there is no
include path or a name is not found in them.

A task qualifies if it is ``multiple_choice`` with exactly two choices per document and no
context: each document's gold choice (``doc_to_target``) is the good sentence, the other the
bad one, scored as the installed lm-eval scores them after an empty context: each choice as
written (its own leading space included), after what lm-eval puts before it
(``choice_delimiter``: lm-eval 0.4 the task's ``target_delimiter``, a space unless it says
otherwise; 0.5 nothing). Tasks whose choices follow a context (``doc_to_text``, a
description, few-shot examples, or choices inside the context) are refused: a pair here is
two whole sentences, which every metric scores, differentiates and tunes on as such.

Labels: ``phenomenon``/``field``/``group`` from the task's ``metadata`` if it has them, else
the innermost group holding the task (else its name), ``unknown`` and the outermost group.
"""

from __future__ import annotations

import difflib
import fnmatch
import sys
from functools import partial
from pathlib import Path
from typing import Any

from lingspace_harness import DataError, DataOptions, MinimalPair, Task, UnknownNameError, UserError, hookimpl
from lingspace_harness.errors import error_reason
from lingspace_harness.pairs import pairs_from_rows

from .lm_eval_compat import Catalog, choice_delimiter, read_task_yaml, yaml_errors

YAML_SUFFIXES = (".yaml", ".yml")


class _NotFound(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


class Index:
    """lm-eval's task catalogue over some directories (and maybe its own tasks), with group chains."""

    def __init__(self, paths: list[Path], defaults: bool) -> None:
        self.paths, self.defaults = paths, defaults
        self.catalog = Catalog(paths, defaults)
        self._chains: dict[str, list[str]] | None = None

    def is_task(self, name: str) -> bool:
        return name in self.catalog.tasks

    def expand(self, name: str, chain: list[str], out: dict[str, list[str]], strict: bool = True) -> None:
        """Add the leaf tasks under ``name`` to ``out``, each with its chain of groups (outermost first)."""
        if name in self.catalog.tags:
            for task in self.catalog.tag_members(name):
                if task in self.catalog:
                    self.expand(task, chain, out, strict)
        elif name in self.catalog.groups:
            if name not in chain:  # a group that includes itself
                self._members(self.catalog.config(name).get("task") or [], chain + [name], out, strict)
        else:
            out.setdefault(name, chain)

    def _members(self, items: Any, chain: list[str], out: dict[str, list[str]], strict: bool) -> None:
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict) and isinstance(item.get("group"), str):
                if item["group"] in self.catalog:
                    self.expand(item["group"], chain, out, strict)
                else:  # an inline sub-group
                    self._members(item.get("task") or [], chain + [item["group"]], out, strict)
                continue
            base = item.get("task") if isinstance(item, dict) else item
            if isinstance(base, str) and base in self.catalog:
                self.expand(base, chain, out, strict)
            elif strict:
                raise UserError(
                    f"lm-eval group {chain[-1]!r} defines task {base!r} inline; only tasks "
                    f"with their own YAML can be phenomena (select them by name instead)"
                )

    def chain(self, leaf: str) -> list[str]:
        """The longest chain of groups holding ``leaf`` anywhere in the index."""
        if self._chains is None:
            self._chains = {}
            for group in sorted(self.catalog.groups):
                found: dict[str, list[str]] = {}
                self.expand(group, [], found, strict=False)
                for name, chain in found.items():
                    if len(chain) > len(self._chains.get(name, [])):
                        self._chains[name] = chain
        return self._chains.get(leaf, [])

    def suggest(self, pattern: str) -> str:
        close = difflib.get_close_matches(pattern, self.catalog.names, n=3, cutoff=0.6)
        return "; did you mean " + " or ".join(map(repr, close)) + "?" if close else ""


def _select(index: Index, names: list[str], files: list[Path], dirs: list[Path]) -> dict[str, list[str]]:
    """Leaf task -> chain of groups, for names (globs), YAML files and directories."""
    chains: dict[str, list[str]] = {}
    for path in files:
        defined = index.catalog.defined_in(path)
        if not defined:
            try:
                read_task_yaml(path)
            except yaml_errors() as exc:
                raise UserError(f"{path}: not a readable lm-eval task YAML ({error_reason(exc)})") from exc
            raise UserError(f"{path} defines no lm-eval task or group (it needs a 'task' or 'group' name)")
        for name in sorted(defined, key=index.is_task):  # a group first: its leaves keep their chain
            index.expand(name, [], chains)
    for directory in dirs:
        leaves = sorted(n for n in index.catalog.tasks if (p := index.catalog.yaml_path(n)) and directory in p.parents)
        if not leaves:
            raise UserError(f"{directory} holds no lm-eval task YAML")
        for leaf in leaves:
            chains.setdefault(leaf, [])
    for pattern in names:
        hits = sorted(n for n in index.catalog.names if fnmatch.fnmatchcase(n, pattern))
        if not hits:
            raise _NotFound(pattern)
        for name in sorted(hits, key=index.is_task):  # groups first: their leaves keep their chain
            index.expand(name, [], chains)
    return chains


def _task(index: Index, leaf: str, chain: list[str]) -> Task:
    cfg = index.catalog.config(leaf)
    kind = cfg.get("output_type", "generate_until" if "class" not in cfg else "multiple_choice")
    if kind != "multiple_choice":
        raise UserError(
            f"lm-eval task {leaf!r} is a {kind} task; only multiple_choice tasks with two choices can be phenomena"
        )
    choices = cfg.get("doc_to_choice")
    if isinstance(choices, (list, dict)) and len(choices) != 2:
        raise UserError(f"lm-eval task {leaf!r} has {len(choices)} choices; a phenomenon needs exactly two")
    given = cfg.get("metadata")
    meta: dict[str, Any] = given if isinstance(given, dict) else {}
    chain = chain or index.chain(leaf)
    return Task(
        name=leaf,
        phenomenon=str(meta.get("phenomenon") or (chain[-1] if chain else leaf)),
        field=str(meta.get("field") or "unknown"),
        group=meta.get("group") or (chain[0] if chain else None),
        source=f"lm_eval:{index.catalog.yaml_path(leaf) or leaf}",
        load=partial(load_pairs, index, leaf),
        description=f"lm-eval task {leaf}",
        delimiter=choice_delimiter(str(cfg.get("target_delimiter", " "))),
    )


def load_pairs(index: Index, name: str, options: DataOptions) -> list[MinimalPair]:
    """Build the lm-eval task (which loads its dataset) and read its documents as pairs."""
    if not sys.stderr.isatty():
        import datasets

        datasets.disable_progress_bars()
    try:
        task = index.catalog.build(name)
    except Exception as exc:  # lm-eval runs the task's own code and its dataset loader
        raise DataError(f"could not load lm-eval task {name!r}: {error_reason(exc)}") from exc
    return task_pairs(task, name)


def _context(name: str, what: str) -> DataError:
    return DataError(
        f"lm-eval task {name!r} puts a context before its choices ({what}); only tasks with "
        f'an empty context (doc_to_text: "") can be phenomena, since a pair is two whole sentences'
    )


def task_pairs(task: Any, name: str) -> list[MinimalPair]:
    """One pair per document of a built lm-eval task: the gold choice is the good sentence.
    Each keeps its choice's text as lm-eval scores it, whitespace included (our BLiMP YAMLs
    write the leading space into the choices, which lm-eval 0.4 and 0.5 both score)."""
    config = task.config
    kind = getattr(task, "OUTPUT_TYPE", None) or getattr(config, "output_type", None)
    if kind != "multiple_choice":
        raise DataError(
            f"lm-eval task {name!r} is a {kind} task; only multiple_choice tasks with two choices can be phenomena"
        )
    if getattr(config, "num_fewshot", None):
        raise _context(name, f"{config.num_fewshot} few-shot examples")
    if getattr(task, "multiple_input", False):
        raise _context(name, "its choices are contexts")
    rows = []
    for number, doc in enumerate(task.eval_docs, start=1):
        choices = task.doc_to_choice(doc)
        if len(choices) != 2:
            raise DataError(
                f"lm-eval task {name!r} is not a two-choice task: document {number} has {len(choices)} choices"
            )
        text = task.doc_to_text(doc)
        if text != "":
            raise _context(name, f"doc_to_text gives {str(text)[:40]!r}")
        if config.description and task.resolve_field(doc, config.description):
            raise _context(name, "a description")
        gold = task.doc_to_target(doc)
        if isinstance(gold, str) and gold in choices:
            gold = choices.index(gold)
        if isinstance(gold, bool) or gold not in (0, 1):
            raise DataError(
                f"lm-eval task {name!r}, document {number}: its target {gold!r} is not one of its two choices"
            )
        rows.append(
            (
                number,
                {
                    "sentence_good": choices[int(gold)],
                    "sentence_bad": choices[1 - int(gold)],
                    "pairID": doc.get("pairID", number),
                },
            )
        )
    by_number = dict(rows)
    checked = pairs_from_rows(rows, f"lm_eval:{name}", pair_id=None)  # validated; ids are the numbers
    kept = [by_number[int(p.pair_id)] for p in checked]
    return [MinimalPair(str(r["pairID"]), r["sentence_good"], r["sentence_bad"]) for r in kept]


class LmEvalTasks:
    name = "lm_eval"
    description = (
        "lm-eval multiple-choice tasks with two choices and no context: lm_eval:GLOB "
        "(tasks, groups, tags), or a task YAML file or directory"
    )

    def claims(self, spec: str) -> bool:
        return spec.endswith(YAML_SUFFIXES) or ("/" in spec and Path(spec).expanduser().is_dir())

    def resolve(self, specs: list[str], options: DataOptions) -> list[Task]:
        paths: list[Path] = []
        for path in options.include_paths:
            if not Path(path).expanduser().is_dir():
                raise UserError(f"--include-path {path}: not a directory")
            paths.append(Path(path).expanduser().resolve())
        names, files, dirs = [], [], []
        for spec in specs:
            path = Path(spec).expanduser()
            if spec.endswith(YAML_SUFFIXES):
                if not path.is_file():
                    raise UserError(f"task YAML not found: {spec}")
                files.append(path.resolve())
                paths.append(path.resolve().parent)
            elif "/" in spec and path.is_dir():
                dirs.append(path.resolve())
                paths.append(path.resolve())
            else:
                names.append(spec)
        paths = list(dict.fromkeys(paths))
        index = Index(paths, defaults=not paths)
        try:
            chains = _select(index, names, files, dirs)
        except _NotFound as missing:
            if index.defaults:
                raise UnknownNameError(self._unknown(missing.pattern, index)) from missing
            index = Index(paths, defaults=True)  # a name not in the include paths: try lm-eval's own
            try:
                chains = _select(index, names, files, dirs)
            except _NotFound as again:
                raise UnknownNameError(self._unknown(again.pattern, index)) from again
        return [_task(index, leaf, chain) for leaf, chain in chains.items()]

    @staticmethod
    def _unknown(pattern: str, index: Index) -> str:
        where = ", ".join(map(str, index.paths)) + " and lm-eval's own tasks" if index.paths else "lm-eval's tasks"
        return f"no lm-eval task, group or tag matches {pattern!r} (searched {where}){index.suggest(pattern)}"


@hookimpl
def lingspace_register_task_sources(register):
    register(LmEvalTasks())
