"""The built wheel holds the core, the built-ins and the YAML files, and works on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds the wheel and installs it into a fresh venv

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    """The built wheel, and a fresh venv with it installed (its dependencies from this
    environment); ``work`` is a directory outside the source tree to run it in."""

    wheel: Path
    env_dir: Path
    site: Path
    work: Path
    env: dict[str, str]  # this environment without PYTHONPATH: the venv must import the wheel's copy

    def python(self, code: str) -> str:
        return subprocess.check_output(
            [str(self.env_dir / "bin" / "python"), "-c", code], cwd=self.work, text=True, env=self.env
        )

    def cli(self, *args: str) -> str:
        return subprocess.check_output(
            [str(self.env_dir / "bin" / "lingspace-harness"), *args], cwd=self.work, text=True, env=self.env
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp_path = tmp_path_factory.mktemp("wheel")
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
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return Installed(wheel, env_dir, site, work, env)


def test_wheel_installs_into_a_fresh_venv(installed: Installed) -> None:
    wheel = installed.wheel
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

    where = installed.python("import lingspace_harness as m;print(m.__file__)")
    assert where.startswith(str(installed.site))
    plugins = json.loads(installed.cli("plugins"))
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lingspace_harness"]
    builtins = {name for name, module in declared.items() if module.startswith("lingspace_harness_plugins.")}
    assert len(builtins) > 10 and {p["name"] for p in plugins if p["builtin"]} == builtins
    tasks = installed.cli("tasks", "blimp_*")
    header, *rows = tasks.splitlines()
    assert header == "name\tphenomenon\tfield\tsource" and len(rows) == 67


def test_the_wheels_load_reads_a_run_and_finds_its_schema(
    installed: Installed, tiny_model: Path, blimp_dir: Path
) -> None:
    """A small run by the installed CLI, read back with the installed ``lingspace_harness.load``
    and checked against the JSON Schema the wheel ships (package data, not the source tree's)."""
    tasks = "blimp_anaphor_gender_agreement,blimp_anaphor_number_agreement,blimp_passive_1,blimp_passive_2"
    args = ["--tasks", tasks, "--data-dir", str(blimp_dir), "--limit", "8", "--metric", "gradsim", "--output", "out"]
    installed.cli("run", "--model", str(tiny_model), *args, "-q")
    read = json.loads(
        installed.python(
            """
import json
from importlib import resources

import jsonschema

import lingspace_harness
from lingspace_harness.run_results import SCHEMA_RESOURCE, results_schema

run = lingspace_harness.load("out")
space = run.space("gradsim")
schema = results_schema()
jsonschema.validate(json.load(open("out/results.json")), schema)
print(json.dumps({
    "module": lingspace_harness.__file__,
    "schema_file": str(resources.files("lingspace_harness").joinpath(SCHEMA_RESOURCE)),
    "schema_id": schema["$id"],
    "version": run.version,
    "tasks": space.tasks,
    "shape": list(space.matrix.shape),
    "mantel": run.analysis["hypotheses"]["gradsim"]["phenomenon"]["r"] is not None,
}))
"""
        )
    )
    assert read["module"].startswith(str(installed.site))
    assert read["schema_file"].startswith(str(installed.site)) and read["schema_file"].endswith("results.schema.json")
    assert read["schema_id"] == f"urn:lingspace-harness:results:{read['version']}"
    assert read["tasks"] == tasks.split(",") and read["shape"] == [4, 4]
    assert read["mantel"]
