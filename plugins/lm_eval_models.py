"""The ``lm_eval`` model loader: ``--model lm_eval:NAME[,ARGS]`` scores through any registered
lm-eval LM, as ``lm_eval --model NAME --model_args ARGS`` builds it (e.g.
``lm_eval:hf,pretrained=DIR``), by calling its ``loglikelihood`` with lm-eval's BLiMP request
for each sentence: an empty context (lm-eval then conditions on its prefix token) and the
sentence after a space (or after the task's ``Task.delimiter``). ``--device``, ``--batch-size``
and (where the LM takes one) ``--dtype`` reach it unless ARGS set them. It only scores:
accuracy and margins work, and metrics that need gradients or a torch model are refused before
anything loads.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from functools import partial
from typing import Any

from lingspace_harness import LoadedModel, ModelError, ModelOptions, hookimpl
from lingspace_harness.errors import error_reason

from .lm_eval_compat import loglikelihood_requests, model_class, model_names, parse_model_args


def loglikelihoods(lm: Any, sentences: Sequence[str], delimiter: str | Sequence[str] = " ") -> list[float]:
    """log p(delimiter + sentence) under lm-eval's empty-context convention, for each sentence
    (``delimiter``: one for all, or one per sentence)."""
    delimiters = [delimiter] * len(sentences) if isinstance(delimiter, str) else list(delimiter)
    requests = loglikelihood_requests([("", d + s) for d, s in zip(delimiters, sentences, strict=True)])
    quiet = "disable_tqdm" in inspect.signature(lm.loglikelihood).parameters
    out = lm.loglikelihood(requests, disable_tqdm=True) if quiet else lm.loglikelihood(requests)
    return [float(ll) for ll, _greedy in out]


class LmEvalModels:
    name = "lm_eval"
    description = "an lm-eval LM: lm_eval:NAME,ARGS as lm_eval's --model NAME --model_args ARGS (scores only)"
    scores_only = True

    def claims(self, spec: str) -> bool:
        return False  # only with the explicit lm_eval: prefix

    def load(self, spec: str, options: ModelOptions) -> LoadedModel:
        name, _, args = (part.strip() for part in spec.partition(","))
        if not name:
            raise ModelError("--model lm_eval:NAME,ARGS needs an lm-eval model name, e.g. lm_eval:hf,pretrained=DIR")
        try:
            cls = model_class(name)
        except KeyError as exc:
            close = difflib.get_close_matches(name, model_names(), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ModelError(f"unknown lm-eval model {name!r}{hint}") from exc
        if options.revision:
            raise ModelError(f"--revision does not apply to --model lm_eval:{spec}; put revision=R in its arguments")
        passed = {
            "--device-map": options.device_map,
            "--attn-implementation": options.attn_implementation,
            "--trust-remote-code": options.trust_remote_code,
        }
        flag = next((f for f, value in passed.items() if value), None)
        if flag:
            raise ModelError(f"{flag} does not apply to --model lm_eval:{spec}; set it in the model's arguments")
        given = parse_model_args(args)
        extra: dict[str, Any] = {"device": options.device, "batch_size": options.batch_size}
        if "dtype" in inspect.signature(cls.__init__).parameters:
            extra["dtype"] = options.dtype
        try:
            lm = cls.create_from_arg_string(args, {k: v for k, v in extra.items() if k not in given})
        except Exception as exc:  # the lm-eval model's own constructor: any error; -v shows it
            raise ModelError(
                f"could not load lm-eval model {name!r} ({args or 'no arguments'}): {error_reason(exc)}"
            ) from exc
        torch_model = getattr(lm, "model", None)
        dtype = str(getattr(torch_model, "dtype", given.get("dtype", extra.get("dtype", "unknown"))))
        return LoadedModel(
            model=None,
            tokenizer=getattr(lm, "tokenizer", None),
            name=f"lm_eval:{spec}",
            revision=given.get("revision"),
            dtype=dtype.removeprefix("torch."),
            device=str(given.get("device", options.device)),
            loader=self.name,
            scorer=partial(loglikelihoods, lm),
        )


@hookimpl
def lingspace_register_model_loaders(register):
    register(LmEvalModels())
