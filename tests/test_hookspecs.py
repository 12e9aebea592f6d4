"""Meta-tests: every hook spec is documented, takes ``register``, and is exercised by a test."""

from __future__ import annotations

import ast
import collections.abc
import inspect
import re
import typing
from pathlib import Path

import pytest

from lingspace_harness import hookspecs
from lingspace_harness.plugins import HOOKS

SPECS = [
    name for name, obj in vars(hookspecs).items() if inspect.isfunction(obj) and hasattr(obj, "lingspace_harness_spec")
]
TESTS = Path(__file__).parent


def test_specs_are_the_registries() -> None:
    assert sorted(SPECS) == sorted(HOOKS)
    assert len(SPECS) == 10


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_documented(name: str) -> None:
    spec = getattr(hookspecs, name)
    assert name.startswith("lingspace_register_")
    assert list(inspect.signature(spec).parameters) == ["register"]
    doc = inspect.getdoc(spec) or ""
    assert "register(" in doc and len(doc.splitlines()) >= 2
    body = ast.parse(inspect.getsource(spec)).body[0].body
    assert len(body) == 1 and isinstance(body[0].value, ast.Constant)  # a docstring, no behaviour


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_typed_with_its_protocol(name: str) -> None:
    hints = typing.get_type_hints(getattr(hookspecs, name))
    assert hints == {"register": collections.abc.Callable[[HOOKS[name][1]], None], "return": type(None)}


def test_hookspecs_import_neither_the_runner_nor_the_analysis() -> None:
    tree = ast.parse(inspect.getsource(hookspecs))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"__future__", "typing", "collections.abc", "pluggy", "models", "protocols", "tasks"}, modules


@pytest.mark.parametrize("name", SPECS)
def test_spec_has_a_test_implementing_it(name: str) -> None:
    pattern = re.compile(rf"@hookimpl\s+def {name}\(")
    users = [p.name for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name and pattern.search(p.read_text())]
    assert users, f"no test implements {name}"


def test_builtins_use_only_the_public_api_and_the_core_imports_none() -> None:
    import importlib

    import lingspace_harness

    root = TESTS.parent
    for path in (root / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lingspace_harness"):
                module = importlib.import_module(node.module or "")  # the package, or a helper module
                public = lingspace_harness.__all__ if module is lingspace_harness else getattr(module, "__all__", [])
                for alias in node.names:
                    assert alias.name in public, f"{path.name}: {node.module}.{alias.name} is not public"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("lingspace_harness.") for a in node.names), path.name
    for path in (root / "lingspace_harness").glob("*.py"):
        assert "lingspace_harness_plugins" not in path.read_text(), f"the core's {path.name} imports a built-in"
