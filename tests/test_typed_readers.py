"""The built-ins that read a finished run (the ``html`` and ``markdown`` reporters, ``report DIR``,
``compare``, the ``lm_eval`` reporter) read it through ``RunResults``, and write what they wrote
when they read results.json as a dict: the digests below are of what the dict readers (commit
f050df5, before issue 33's typed readers) wrote for these same results. Null (JSON) and NaN
(``read_results``) cells read alike. If an output is meant to change, regenerate its digest
with :func:`digests`."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from lingspace_harness_plugins.lm_eval_results import LmEvalResults
from lingspace_harness_plugins.markdown import MarkdownReport
from lingspace_harness_plugins.report import HtmlReport
from test_compare import TASKS as COMPARED
from test_compare import results_for
from test_report import TASKS, constructed
from test_report_contents import analysed

from lingspace_harness import RunResults
from lingspace_harness.cli import main
from lingspace_harness.results import read_results

#: The dict readers' outputs for :func:`digests`' inputs: summary.md and results_lm_eval.json
#: byte for byte, report.html with each inlined PNG left out (its bytes are matplotlib's, which vary),
#: comparison.json with its numbers to 10 significant digits.
EXPECTED = {
    "summary.md": "573b16b5c192caf8ab76a3ef01e7780758302b7d028a7a9c11e612c3b216755c",
    "report.html": "bf6e6c844a08e3234053cc237f7f0fbff5cb59e63605dd8408c8fab0ccf77c85",
    "results_lm_eval.json": "a1fd763d17760d4b397b536a8bedfb1b47975fcbd976f468ef885b4d17c1ecca",
    "results_lm_eval.json tokens": "50305b364216a35fed2af31288b61a5a3c9e3709447eeb5615c47a9cd88491f8",
    "comparison.json": "e7ba01c52cceebc15a3643498b48423490c1562291c1047370bf54885925d636",
}


def synthetic() -> dict[str, Any]:
    """The report tests' analysed run, with what a reader has to take care of: null and NaN cells,
    a task without a phenomenon, one without an accuracy, an undefined margin, FTGD's perplexity
    flags (one space flagging two sources, one none), a form, and two spaces' agreement."""
    results = analysed()
    transfer = results["spaces"]["transfer"]
    transfer["matrix"][0][1] = None
    transfer["matrix"][2][4] = float("nan")
    transfer.update(
        {
            "form": "rescored",
            "undefined": {"count": 2, "reason": "untuned"},
            "perplexity_flagged": {"sources": [TASKS[0], TASKS[3]], "bound": 0.1},
            "perplexity_on": "wikitext",
            "perplexity_relative_change": [0.3, 0.01, 0.02, 0.4, 0.0, None],
        }
    )
    results["spaces"]["gradsim"].update({"perplexity_flagged": {"sources": [], "bound": 0.2}, "perplexity_on": "x"})
    del results["tasks"][TASKS[1]]["phenomenon"]
    del results["tasks"][TASKS[2]]["accuracy"]
    results["tasks"][TASKS[4]]["margin"] = None
    results["analysis"]["agreement"] = {
        "probes": {"gradsim": {"space": "gradsim"}, "transfer": {"space": "transfer"}},
        "n_tasks": 6,
        "pairs": [{"a": "gradsim", "b": "transfer", "r": 0.3, "p": 0.2, "n_pairs": 30}],
    }
    return results


def lm_eval_run(directory: Path, tokens: bool) -> dict[str, Any]:
    """A constructed run the ``lm_eval`` reporter can read (its pairs.jsonl in ``directory``)."""
    results = constructed()
    results["config"].update(
        {"batch_size": 4, "options": {"metric": {"accuracy": {"normalise": "tokens"}}} if tokens else {}}
    )
    results["model"].update({"device": "cpu", "commit": None})
    results["tasks"][TASKS[0]]["source"] = "blimp"
    rng = np.random.default_rng(1)
    rows = [
        {
            "task": t,
            "logp_good": -float(rng.uniform(5, 9)),
            "logp_bad": -float(rng.uniform(5, 9)),
            "n_good": 4,
            "n_bad": 5,
        }
        for t in TASKS
        for _ in range(5)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return results


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def without_images(html: str) -> str:
    return re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html)


def compared(tmp: Path) -> Path:
    """``compare`` of three constructed runs without analyses, the last over fewer tasks (so
    that each run's analysis is computed on the tasks they share)."""
    dirs = []
    for name, (noise, seed, tasks) in {
        "a": (0.0, 1, COMPARED),
        "b": (0.1, 2, COMPARED),
        "c": (0.3, 3, COMPARED[:6]),
    }.items():
        (tmp / name).mkdir(parents=True)
        (tmp / name / "results.json").write_text(json.dumps(results_for(noise, seed, tasks)))
        dirs.append(str(tmp / name))
    assert main(["compare", *dirs, "--output", str(tmp / "out"), "--permutations", "49", "--bootstraps", "20"]) == 0
    return tmp / "out" / "comparison.json"


def digests(tmp: Path) -> dict[str, str]:
    """The digests of :data:`EXPECTED`, computed by the readers importable now."""
    run = tmp / "run"
    run.mkdir(parents=True)
    HtmlReport().report(synthetic(), run)
    MarkdownReport().report(synthetic(), run)
    out = {
        "summary.md": _digest((run / "summary.md").read_bytes()),
        "report.html": _digest(without_images((run / "report.html").read_text())),
    }
    for tokens, key in ((False, "results_lm_eval.json"), (True, "results_lm_eval.json tokens")):
        directory = tmp / key.replace(" ", "-")
        written = LmEvalResults().report(lm_eval_run(directory, tokens), directory)
        out[key] = _digest(written[0].read_bytes())
    comparison = json.loads(compared(tmp / "compare").read_text())
    for row in comparison["runs"]:
        row["dir"] = Path(row["dir"]).name  # the runs' directories are under tmp
    out["comparison.json"] = _digest(json.dumps(_rounded(comparison), sort_keys=True))
    return out


def test_the_readers_write_what_the_dict_readers_wrote(tmp_path: Path, capsys) -> None:
    assert digests(tmp_path) == EXPECTED


def _outputs(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_null_and_nan_cells_read_alike(tmp_path: Path, capsys) -> None:
    """The reporters get results with null cells (from the runner); ``report DIR`` with NaN cells
    (``read_results``): every file they write is the same, images included."""
    given = synthetic()
    source = tmp_path / "source"
    source.mkdir()
    (source / "results.json").write_text(json.dumps(given, allow_nan=True))
    forms = {
        "null": json.loads(json.dumps(RunResults.from_json(copy.deepcopy(given)).to_json())),
        "nan": read_results(source),
    }
    assert forms["null"]["spaces"]["transfer"]["matrix"][0][1] is None
    assert np.isnan(forms["nan"]["spaces"]["transfer"]["matrix"][0][1])
    written = {}
    for name, results in forms.items():
        out = tmp_path / name
        out.mkdir()
        HtmlReport().report(results, out)
        MarkdownReport().report(results, out)
        written[name] = _outputs(out)
    assert written["null"] == written["nan"] and "report.html" in written["nan"] and len(written["nan"]) == 9
    assert main(["report", str(source), "--output", str(tmp_path / "command")]) == 0
    assert _outputs(tmp_path / "command") == written["nan"]  # report DIR reads the file: NaN cells
    assert "hatched cells are undefined" in (tmp_path / "command" / "report.html").read_text()
