"""Units of work and how a run hands them to an executor (or runs one shard of them).

A run's independent units: stage 0, each task's gradient differential; stage 1, what metrics
declare (e.g. one FTGD tune per source task); stage 2 (``GATHER_STAGE``), units that read every
unit before them (e.g. one target's column of a linear transfer space). Every unit stores its result in the unit cache
under the output directory, so whichever process runs it, the driver then assembles
results.json from the cache exactly as a serial run does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .capabilities import HasUnits
from .capabilities import units as metric_units
from .config import IN_PROCESS, RunConfig
from .context import Run
from .costs import GRADIENT, record_seconds
from .errors import UserError
from .outputs import RUN_FILE, recorded_options
from .plan import Plan
from .progress import progress_bar
from .protocols import Unit
from .results import write_atomic
from .units import UNITS_DIR

log = logging.getLogger("lingspace_harness")

#: Units of this stage and later may read every unit of the earlier stages, whichever task's
#: (e.g. linear transfer's target columns read every source's update), not only their own task's.
GATHER_STAGE = 2


def plan_units(ctx: Run) -> list[Unit]:
    """The run's units that are not stored yet, in stage order (stage 1 units are planned as if
    stage 0 were done; a metric lists them with ``units(ctx)``)."""
    units = [Unit(0, GRADIENT, task) for task in ctx.pending_gradients()]  # with the halves' (split-half)
    for run in ctx.variants():
        for metric in run.metrics:
            units += [replace(u, variant=run.variant) for u in metric_units(metric, run)]
    unique: dict[tuple[str, str, str], Unit] = {}
    for unit in units:  # the first declaration wins
        unique.setdefault((unit.variant, unit.kind, unit.name), unit)
    return sorted(unique.values(), key=lambda u: u.stage)  # stable: declaration order within a stage


def shard_of(unit: Unit, ctx: Run, n: int) -> int:
    """Units are sharded by task, so a task's gradient and its tuning land in the same shard."""
    names = ctx.task_names
    index = names.index(unit.name) if unit.name in names else sum(map(ord, unit.name))
    return index % n


#: How a worker prepares its run: ``prepare(harness, config, check)``, where ``check(fingerprints)``
#: sees the data's fingerprints before the model loads (see ``runner.prepare``).
Prepare = Callable[[Any, RunConfig, Callable[[dict[str, Any]], None]], Run]


@dataclass
class WorkerSpec:
    """A picklable recipe for a worker: the run's config, how to prepare a run from it (a
    module-level function, pickled by name), the driver's data and model ``fingerprints`` (a
    worker that loads other data or another model is refused), the executor's ``options`` (its
    ``Options`` dataclass, validated before anything loads), and, in-process, the driver's own
    context."""

    config: RunConfig
    prepare: Prepare
    threads: int | None = None
    local: Run | None = field(default=None, repr=False, compare=False)
    fingerprints: dict[str, Any] = field(default_factory=dict)
    options: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "local": None}

    def build(self) -> Worker:
        """The driver's own context in-process; elsewhere, load plugins, data and model once
        (a UserError if they differ from the driver's)."""
        if self.local is not None:
            return Worker(self.local)
        import torch

        from .plugins import load_harness

        if self.threads:
            torch.set_num_threads(self.threads)
        # a worker runs its units itself: the driver's executor (perhaps registered only there) is not its own
        local = replace(self.config, executor=IN_PROCESS, executor_options={})
        ctx = self.prepare(load_harness(), local, self.same_as_driver)
        self.same_as_driver(ctx.shared.fingerprints)
        return Worker(ctx)

    def same_as_driver(self, found: dict[str, Any]) -> None:
        """Refuse a worker whose data or model (``found``: its fingerprints so far) differ from
        the driver's: its units would be keyed by its own fingerprints, so the driver never sees them."""
        mine = self.fingerprints
        if mine.get("data") and found.get("data") not in (None, mine["data"]):
            tasks, theirs = mine.get("tasks", {}), found.get("tasks", {})
            odd = next((t for t in sorted({*tasks, *theirs}) if tasks.get(t) != theirs.get(t)), None)
            raise UserError(
                f"a worker loaded other data than the driver (fingerprint {found['data']}, not {mine['data']}"
                + (f"; task {odd} differs" if odd else "")
                + "): every worker must see the same --data-dir, --include-path and task files"
            )
        if mine.get("model") and found.get("model") not in (None, mine["model"]):
            raise UserError(
                f"a worker loaded another model than the driver (fingerprint {found['model']}, not "
                f"{mine['model']}): every worker must load the same --model files and --revision"
            )

    def verify(self, units: list[Unit]) -> None:
        """On the driver (in-process spec only): a UserError naming the first of ``units`` that
        is not stored where the driver reads it. An executor may call it after each stage; the
        core calls it once the executor returns."""
        if self.local is None:
            raise ValueError("WorkerSpec.verify runs on the driver, with its own context")
        check_stored(self.local, units)


class Worker:
    """Runs units against one loaded model, and stores the wall seconds each took (``costs``)."""

    def __init__(self, ctx: Run) -> None:
        self.ctx = ctx

    def run(self, unit: Unit) -> Unit:
        ctx = self.ctx.for_variant(unit.variant)
        start = time.perf_counter()
        if unit.owner == "":
            if unit.kind != GRADIENT:
                raise ValueError(f"unknown core unit {unit}")
            ctx.compute_gradient(unit.name)
        else:
            ctx.shared.buffers.release()  # the gradient units (stage 0) are behind us
            owner = ctx.harness.metrics.get(unit.owner)
            if not isinstance(owner, HasUnits):
                raise ValueError(f"metric {unit.owner!r} has no run_unit() for its unit {unit}")
            owner.run_unit(ctx, unit)
        record_seconds(ctx, unit, time.perf_counter() - start)
        return unit


def run_in_process(stages: list[list[Unit]], worker: WorkerSpec) -> None:
    """The default executor: every unit, one after another, in this process."""
    runner = worker.build()
    with progress_bar(sum(map(len, stages)), "units", unit="unit") as bar:
        for unit in (u for stage in stages for u in stage):
            runner.run(unit)
            bar.update(1)


def execute_units(
    ctx: Run,
    executor: Any,
    prepare: Prepare,
    *,
    shard: tuple[int, int] | None = None,
    merge_of: int | None = None,
) -> None:
    """Run the pending units stage by stage through ``executor`` (None: in this process), or only
    shard ``(i, n)`` of them. ``merge_of=n`` (merge) computes no unit: any missing one of n
    shards is an error. A shard runs its units of ``GATHER_STAGE`` only once no unit of an earlier
    stage is pending in any shard (they read them all): else it leaves them for a rerun."""
    if merge_of is not None:
        missing = plan_units(ctx)
        if missing:
            raise UserError(incomplete_message(ctx, missing, merge_of))
    ctx.scores("test")  # eval1, before any unit needs it
    units = plan_units(ctx)
    if shard is not None:
        units = [u for u in units if shard_of(u, ctx, shard[1]) == shard[0]]
        if any(u.stage >= GATHER_STAGE for u in units):
            _execute(ctx, executor, prepare, [u for u in units if u.stage < GATHER_STAGE])
            waiting = [u for u in plan_units(ctx) if u.stage < GATHER_STAGE]
            if waiting:
                log.warning(
                    "shard %d/%d: %d units read every shard's earlier units, and %d of those are not finished: "
                    "rerun this shard once every shard has finished, then merge",
                    *shard,
                    sum(u.stage >= GATHER_STAGE for u in units),
                    len(waiting),
                )
                return
            units = [u for u in units if u.stage >= GATHER_STAGE]
    _execute(ctx, executor, prepare, units)


def _execute(ctx: Run, executor: Any, prepare: Prepare, units: list[Unit]) -> None:
    """``units`` grouped by stage, through ``executor`` (None: in this process), then checked stored."""
    stages = [[u for u in units if u.stage == stage] for stage in sorted({u.stage for u in units})]
    if not stages:
        return
    name = executor.name if executor is not None else "in-process"
    log.info("%d units in %d stage(s) through the %s executor", len(units), len(stages), name)
    options = ctx.options(executor.name, "executor") if executor is not None else None
    spec = WorkerSpec(ctx.config, prepare, local=ctx, fingerprints=ctx.shared.fingerprints, options=options)
    (executor.execute if executor is not None else run_in_process)(stages, spec)
    ctx.shared.buffers.release()
    if executor is not None:  # in-process, a unit cannot be stored out of the driver's sight
        spec.verify(units)


def check_stored(ctx: Run, units: list[Unit]) -> None:
    """A UserError naming the first of ``units`` (in stage order) that is still pending."""
    pending = {(u.variant, u.kind, u.name) for u in plan_units(ctx)}
    lost = next((u for u in units if (u.variant, u.kind, u.name) in pending), None)
    if lost is None:
        return
    variant = f" ({lost.variant})" if lost.variant else ""
    raise UserError(
        f"the {ctx.config.executor} executor finished stage {lost.stage}, but unit {lost.kind}:{lost.name}{variant} "
        f"is not stored in {Path(ctx.config.output) / UNITS_DIR}: its workers wrote to an --output this process "
        "does not see (a cluster needs a shared filesystem), or a worker loaded other data or another model"
    )


def incomplete_message(ctx: Run, missing: list[Unit], shards: int) -> str:
    example = ", ".join(f"{u.kind}:{u.name}" + (f" ({u.variant})" if u.variant else "") for u in missing[:3])
    idle = sorted({shard_of(u, ctx, shards) for u in missing})
    return (
        f"{len(missing)} units are not finished (e.g. {example}); "
        f"rerun shard(s) {', '.join(f'{i}/{shards}' for i in idle)}"
    )


def shard_status(ctx: Run, shards: int) -> str:
    """Units left, in all and per shard and kind: e.g. ``3 units left: shard 1/3: 2 gradient, 1 transfer``."""
    missing = plan_units(ctx)
    if not missing:
        return "every unit is finished: merge can assemble results.json"
    lines = [f"{len(missing)} units left"]
    for i in range(shards):
        mine = [u for u in missing if shard_of(u, ctx, shards) == i]
        kinds = {k: sum(u.kind == k for u in mine) for k in dict.fromkeys(u.kind for u in mine)}
        lines.append(f"  shard {i}/{shards}: " + (", ".join(f"{n} {k}" for k, n in kinds.items()) or "done"))
    return "\n".join(lines)


def write_run_file(plan: Plan, fingerprints: dict[str, Any], batch_size: int | None = None) -> Path:
    """Record the run beside its units: ``merge`` rebuilds the run from it, and a later run into
    the same directory is checked against it (``outputs``; the options of plugins an earlier run
    used stay recorded, see ``outputs.recorded_options``). ``batch_size``: what ``--batch-size
    auto`` resolved to, kept for ``recorded_batch_size``."""
    path = Path(plan.config.output) / RUN_FILE
    config = {**plan.config_json(), "options": recorded_options(path.parent, plan)}
    body: dict[str, Any] = {"config": config, "execution": plan.execution_json()}
    body["fingerprints"] = fingerprints
    if batch_size is not None:
        body["batch_size"] = batch_size
    write_atomic(path, [json.dumps(body, indent=2), "\n"])
    return path


def recorded_batch_size(config: RunConfig) -> int | None:
    """What ``--batch-size auto`` resolved to in ``config.output``'s run.json, where that run has
    the same model settings; None where there is none."""
    try:
        body = json.loads((Path(config.output) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    old, new = body.get("config") or {}, config.to_json()
    same = all(old.get(k) == new.get(k) for k in ("model", "revision", "dtype", "device", "device_map", "batch_size"))
    size = body.get("batch_size")
    return size if same and isinstance(size, int) and size >= 1 else None


def read_run_file(out_dir: Path) -> RunConfig:
    path = Path(out_dir) / RUN_FILE
    if not path.is_file():
        raise UserError(f"{out_dir} has no {RUN_FILE}: is it the output directory of a run or its shards?")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig.from_json(body["config"], body.get("execution"))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a run file this version can read: {exc}") from exc
