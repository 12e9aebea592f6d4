"""docs/user-guide/tutorial.ipynb runs from top to bottom on SmolLM2 and prints its Mantel test."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import lingspace_harness_plugins
import pytest

import lingspace_harness

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "user-guide" / "tutorial.ipynb"

#: The whole notebook takes about a minute on two CPU cores; the limit leaves room for a busy machine.
TIMEOUT_S = 600


def _import_roots() -> list[str]:
    """The directories this process imports the project's two packages from, where a plain
    directory layout makes them importable from there (an editable install's mapping need not)."""
    roots = []
    for module in (lingspace_harness, lingspace_harness_plugins):
        package = Path(module.__file__).parent if module.__file__ else None
        if package is not None and package.name == module.__name__:
            roots.append(str(package.parent))
    return roots


def test_notebook_has_no_outputs() -> None:
    """The committed notebook is stripped: no outputs or execution counts to go stale."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_tutorial_notebook_runs(
    tmp_path: Path, smollm2_gguf: Path, blimp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # The kernel inherits this environment: the same BLiMP directory, and the same code as this
    # process (its working directory is tmp_path, so `python -m pytest`'s root on sys.path would not carry).
    monkeypatch.setenv("LINGSPACE_BLIMP_DIR", str(blimp_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*_import_roots(), *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import lingspace_harness as _m; print('imported from', _m.__file__)"))
    # ipykernel's own python3 kernel, which runs this interpreter (sys.executable); no kernel
    # directories, so that a python3 kernel installed for another Python cannot stand in.
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[])
    assert specs.get_kernel_spec("python3").argv[0] == sys.executable
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(nb, km=kernel, timeout=TIMEOUT_S, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # a cell's error raises CellExecutionError, naming the cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert re.search(r"Mantel test, gradsim against phenomenon: r = -?\d\.\d{3}, p = \d\.\d{4}", text), text
    assert re.search(r"Mantel test, gradsim against agreement: r = -?\d\.\d{3}", text), text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the heatmap
    assert (tmp_path / "tutorial-out" / "results.json").is_file()
    assert f"imported from {lingspace_harness.__file__}" in text  # the kernel ran the code under test
    print(text)  # with -s: what the notebook printed
