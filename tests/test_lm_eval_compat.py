"""lm-eval through its public API only, behind one compatibility module."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from lingspace_harness_plugins.blimp_yaml import yaml_path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lingspace_harness", "plugins")
#: ``lm_eval.tasks._index``-style module paths, and ``from lm_eval.x import _name``.
PRIVATE = re.compile(r"lm_eval\.[a-z_.]*\._|from\s+lm_eval[\w.]*\s+import\s+\(?\s*_")


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_private_lm_eval_modules() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line)
    ]
    assert found == []


def test_the_pattern_catches_private_imports() -> None:
    assert PRIVATE.search("from lm_eval.tasks._index import Kind")
    assert PRIVATE.search("    import lm_eval.tasks._yaml_loader")
    assert PRIVATE.search("from lm_eval.tasks import _index")
    assert not PRIVATE.search("from lm_eval.tasks import TaskManager")
    assert not PRIVATE.search("from lm_eval.api.registry import get_model")


def test_lm_eval_is_imported_only_by_the_compat_module() -> None:
    """One place to adapt to a new lm-eval; registry priming exists once."""
    importers = sorted(
        p.name for p in sources() if re.search(r"^\s*(from|import)\s+lm_eval\b", p.read_text(), re.MULTILINE)
    )
    assert importers == ["lm_eval_compat.py"]
    priming = [p.name for p in sources() if "import lm_eval.filters" in p.read_text()]
    assert priming == ["lm_eval_compat.py"]


def test_catalog_kinds_configs_files_and_tags(tmp_path: Path) -> None:
    from lingspace_harness_plugins.lm_eval_compat import Catalog

    (tmp_path / "t.yaml").write_text(
        textwrap.dedent("""\
        task: compat_one
        tag: compat_tag
        dataset_path: json
        output_type: multiple_choice
        doc_to_text: ""
        doc_to_choice: "{{[a, b]}}"
        doc_to_target: 0
        metadata: {phenomenon: p}
        """)
    )
    (tmp_path / "g.yaml").write_text("group: compat_group\ntask: [compat_one]\n")
    catalog = Catalog([tmp_path, yaml_path()], defaults=False)
    assert "compat_one" in catalog.tasks and "compat_group" in catalog.groups and "compat_tag" in catalog.tags
    assert "lingspace_blimp" in catalog.groups and "lingspace_blimp_adjunct_island" in catalog.tasks
    assert catalog.tag_members("compat_tag") == ["compat_one"]
    assert catalog.config("compat_one")["metadata"] == {"phenomenon": "p"}
    assert catalog.config("compat_group")["task"] == ["compat_one"]
    assert catalog.yaml_path("compat_one").resolve() == (tmp_path / "t.yaml").resolve()
    assert catalog.defined_in(tmp_path / "g.yaml") == ["compat_group"]
    assert catalog.defined_in(tmp_path / "nothing.yaml") == []
    assert {"compat_one", "compat_group", "compat_tag"} <= set(catalog.names)


def test_lm_registry_and_requests() -> None:
    from lingspace_harness_plugins.lm_eval_compat import (
        loglikelihood_requests,
        model_class,
        model_names,
        parse_model_args,
    )

    assert "hf" in model_names() and model_class("hf").__name__ == "HFLM"
    with pytest.raises(KeyError):
        model_class("no_such_lm")
    assert parse_model_args("pretrained=DIR,batch_size=4") == {"pretrained": "DIR", "batch_size": 4}
    (request,) = loglikelihood_requests([("", " A cat.")])
    assert request.request_type == "loglikelihood" and request.args == ("", " A cat.")
    assert (request.task_name, request.doc_id) == ("lingspace", 0)


def test_a_task_file_that_is_broken_or_defines_nothing_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from lingspace_harness.cli import main

    (tmp_path / "broken.yaml").write_text("task: [unclosed\n")
    (tmp_path / "empty.yaml").write_text("dataset_path: json\n")
    assert main(["tasks", str(tmp_path / "broken.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'broken.yaml'}: not a readable lm-eval task YAML (")
    assert main(["tasks", str(tmp_path / "empty.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'empty.yaml'} defines no lm-eval task or group (it needs a 'task' or 'group' name)"
    ]
