"""The built wheel holds the core, the built-ins and the YAML files, and works on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds the wheel and installs it into a fresh venv

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("lingspace_harness-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [
        "lingspace_harness/hookspecs.py",
        "lingspace_harness/cli.py",
        "lingspace_harness/py.typed",
        "lingspace_harness/schema/results.schema.json",
        "lingspace_harness_plugins/blimp.py",
        "lingspace_harness_plugins/hf_models.py",
        "lingspace_harness_yaml/blimp/_template_yaml",
        "lingspace_harness_yaml/blimp/_lingspace_blimp.yaml",
        "lingspace_harness_yaml/blimp/lingspace_blimp_adjunct_island.yaml",
        "lingspace_harness_yaml/blimp/generate.py",
    ]:
        assert expected in names
    assert sum(n.startswith("lingspace_harness_yaml/blimp/lingspace_blimp_") for n in names) == 67
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)
    (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
    assert "\nLicense-Expression: MIT\n" in zipfile.ZipFile(wheel).read(metadata).decode()  # SPDX, PEP 639
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert (
        "[lm_eval.tasks]\nlingspace_harness = lingspace_harness_yaml\n"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )  # lm-eval PR #4015's task directories

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    # Then the dependencies, from this environment, behind the fresh venv's own site-packages
    # (added only now, or pip would see this environment's copy and install nothing); as a site
    # directory, so that its own .pth files count (CI's lm-eval 0.5 venv reaches the main one so).
    (site / "deps.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.check_output(
        [str(python), "-c", "import lingspace_harness as m;print(m.__file__)"], cwd=work, text=True
    )
    assert where.startswith(str(site))
    plugins = json.loads(
        subprocess.check_output([str(env_dir / "bin" / "lingspace-harness"), "plugins"], cwd=work, text=True)
    )
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lingspace_harness"]
    builtins = {name for name, module in declared.items() if module.startswith("lingspace_harness_plugins.")}
    assert len(builtins) > 10 and {p["name"] for p in plugins if p["builtin"]} == builtins
    tasks = subprocess.check_output(
        [str(env_dir / "bin" / "lingspace-harness"), "tasks", "blimp_*"], cwd=work, text=True
    )
    header, *rows = tasks.splitlines()
    assert header == "name\tphenomenon\tfield\tsource" and len(rows) == 67
