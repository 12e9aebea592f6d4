"""pytest plugin (entry point ``pytest11``) with fixtures for plugin authors.

- ``lingspace_plugin(obj, name)`` registers a plugin object for the current test only.
- ``tiny_model`` is the path of a tiny random GPT-2 with an offline-trained tokenizer;
  ``tiny_model_factory(arch)`` builds ``gpt2``, ``gpt_neox`` or ``llama`` ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .plugins import register_plugin, unregister_plugin
from .tiny import build_tiny_model


@pytest.fixture
def lingspace_plugin() -> Iterator[Callable[..., Any]]:
    names: list[str] = []

    def register(obj: Any, name: str = "test-plugin") -> Any:
        register_plugin(obj, name)
        names.append(name)
        return obj

    yield register
    for name in names:
        unregister_plugin(name)


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def make(arch: str = "gpt2") -> Path:
        if arch not in built:
            built[arch] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch)
        return built[arch]

    return make


@pytest.fixture
def tiny_model(tiny_model_factory: Callable[[str], Path]) -> Path:
    return tiny_model_factory("gpt2")
