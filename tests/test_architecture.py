"""The shape of the code: data flows one way, the core names no built-in, modules and
functions stay small, and the public API is documented (docs/plugins/api.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import lingspace_harness

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "lingspace_harness"
PLUGINS = ROOT / "plugins"
#: The plugin author's page whose tables list the public API and the helper modules.
API_DOC = ROOT / "docs" / "plugins" / "api.md"


def _doc_section(title: str) -> str:
    """The text of ``API_DOC``'s section ``## title``, up to the next section."""
    return API_DOC.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = {"plugins": "lingspace_harness_plugins"}.get(parts[0], parts[0])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file: top level, inside functions, under TYPE_CHECKING."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not (node.level and node.module is None):  # ``from . import x`` imports x only
                out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}
    return out


def _graph(folder: Path) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in folder.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle_in_the_core_or_the_builtins() -> None:
    for folder in (CORE, PLUGINS):
        graph = _graph(folder)
        # the package's own __init__ re-exports everything: it may import any module, none may import it
        top = _module_name(folder / "__init__.py")
        assert not [m for m, deps in graph.items() if top in deps and m != top], f"a module imports {top}"
        cycle = _cycle({m: deps - {top} for m, deps in graph.items()})
        assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_imports_and_names_no_builtin() -> None:
    from lingspace_harness import RunConfig

    builtins = {p.stem for p in PLUGINS.glob("*.py") if p.stem != "__init__"} | {"ftgd", "transfer", "serial"}
    builtins -= set(RunConfig.__dataclass_fields__)  # e.g. "hypotheses" is also a config field
    builtins -= {"strategies"}  # also the name of a metric's method (``Metric.strategies``)
    for path in CORE.glob("*.py"):
        text = path.read_text()
        assert "lingspace_harness_plugins" not in text, f"the core's {path.name} imports a built-in"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in builtins:
                if path.name == "config.py" and node.value == "serial":
                    continue  # the core's own in-process executor is called "serial"
                raise AssertionError(f"{path.name}:{node.lineno} names the built-in {node.value!r}")


def test_modules_and_functions_stay_small() -> None:
    for path in [*CORE.glob("*.py"), *PLUGINS.rglob("*.py")]:
        lines = path.read_text().count("\n")
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(ROOT)}: {node.name} has {length} lines"


def test_every_public_name_is_documented_in_the_api_page() -> None:
    table = set(re.findall(r"^\| `([A-Za-z_]+)`", _doc_section("The public API"), flags=re.M))
    public = set(lingspace_harness.__all__) - {"__version__"}
    assert public - table == set(), f"public names missing from docs/plugins/api.md's API table: {public - table}"
    assert table - public == set(), f"docs/plugins/api.md documents names that are not public: {table - public}"


#: The core's helper modules (their ``__all__`` is public beside ``lingspace_harness.__all__``).
HELPER_MODULES = (
    "agreement",
    "analysis",
    "arguments",
    "config",
    "errors",
    "gradients",
    "models",
    "options",
    "pairs",
    "progress",
    "results",
    "run_results",
    "scoring",
    "selection",
    "stats",
    "tasks",
)


def test_every_helper_is_documented_in_the_api_page() -> None:
    import importlib

    text = _doc_section("Helper modules")
    table = set(re.findall(r"^\| `lingspace_harness\.([a-z_]+)` \| `([A-Za-z_]+)` \|", text, flags=re.M))
    helpers = {(m, n) for m in HELPER_MODULES for n in importlib.import_module(f"lingspace_harness.{m}").__all__}
    assert helpers - table == set(), f"helpers missing from docs/plugins/api.md: {helpers - table}"
    assert table - helpers == set(), f"docs/plugins/api.md documents helpers that are not public: {table - helpers}"
    assert not {n for _, n in helpers} & set(lingspace_harness.__all__), "a helper is also in the top-level API"


def test_moved_helpers_still_import_from_the_top_level_with_a_warning() -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from lingspace_harness import read_pairs_jsonl  # moved to lingspace_harness.pairs in 0.2
    from lingspace_harness.pairs import read_pairs_jsonl as moved

    assert read_pairs_jsonl is moved
    assert caught and {w.category for w in caught} == {DeprecationWarning}  # `from` imports look the name up twice
    assert "lingspace_harness.pairs" in str(caught[0].message)


def test_ci_and_pre_commit_run_the_tool_versions_pinned_in_the_dev_extra() -> None:
    import tomllib

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pins = dict(d.split("==") for d in dev if "==" in d)
    assert set(pins) == {"ruff", "mypy"}, pins
    ci = (ROOT / ".ci" / "run").read_text()
    for tool, version in pins.items():
        assert f'"{tool}=={version}"' in ci, f".ci/run does not install {tool}=={version}"
        assert re.search(rf"^{tool}\b", ci, flags=re.M), f".ci/run does not run {tool}"
    assert f"rev: v{pins['ruff']}" in (ROOT / ".pre-commit-config.yaml").read_text()
