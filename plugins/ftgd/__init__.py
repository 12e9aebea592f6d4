"""FTGD, fine-tuning via gradient differentials, and the probing metrics built on it.

- ``tuner``: the masked tuner (only the mask's entries of the parameters move).
- ``probing``: tune a copy per source task, re-score every task, restore (one unit each).
- ``controls``: mask kinds (``topk``, ``random``, ``magnitude``, ``full``) and the general
  text file for the perplexity change.
- ``calibration``: the ``calibrate`` command (FTGD's learning rate per model, against a bound
  on the general-text perplexity change) and the per-source perplexity flags.
- ``metrics``: ``transfer`` (which also provides the ``tuned-states`` capability, e.g. for
  ``cka``) and ``lookahead``. Both need a ``mask`` (a gradient strategy that provides one).
"""

from __future__ import annotations

from lingspace_harness import hookimpl

from .calibration import CalibrateCommand
from .metrics import Lookahead, Transfer


@hookimpl
def lingspace_register_metrics(register):
    register(Transfer())
    register(Lookahead())


@hookimpl
def lingspace_register_commands(register):
    register(CalibrateCommand())
