"""The ``ray`` executor: a worker pool on a Ray cluster (the core runs units in-process by default).

It only runs units; each unit writes its result into the run's unit cache, and the driver
assembles results.json from the cache, so the executor never changes the results.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, replace
from typing import Any

from lingspace_harness import Unit, UserError, Worker, WorkerSpec, hookimpl
from lingspace_harness.progress import progress_bar


@dataclass(frozen=True)
class RayOptions:
    """The ray executor's options (``--ray-address``, ``--workers``, ...), checked before anything loads."""

    ray_address: str | None = None
    workers: int | None = None
    worker_cpus: float = 1.0
    worker_gpus: float | None = None
    retries: int = 3

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UserError(f"ray: --workers must be at least 1, got {self.workers}")
        if not self.worker_cpus > 0:
            raise UserError(f"ray: --worker-cpus must be more than 0, got {self.worker_cpus}")
        if self.worker_gpus is not None and not self.worker_gpus >= 0:
            raise UserError(f"ray: --worker-gpus must be 0 or more, got {self.worker_gpus}")
        if self.retries < 0:
            raise UserError(f"ray: --retries must be 0 or more (unbounded retries are not offered), got {self.retries}")


class _RayWorker:
    """One Ray actor: loads the plugins, data and model once, then runs units. A worker the
    user can fix (e.g. it sees other data than the driver) fails each unit with that one line,
    rather than dying in its constructor and being restarted."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.worker: Worker | None = None
        try:
            self.worker = spec.build()
        except UserError as exc:
            self.error = exc

    def run(self, unit: Unit) -> Unit:
        if self.worker is None:
            raise self.error
        return self.worker.run(unit)


class Ray:
    name = "ray"
    description = "fan units out to workers on a Ray cluster (pip install 'lingspace-harness[ray]')"
    Options = RayOptions

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--ray-address",
            metavar="auto|HOST:PORT",
            help="ray: join this cluster ('auto': the one on this node); default: start a local one",
        )
        group.add_argument(
            "--workers",
            type=int,
            metavar="N",
            help="ray: number of workers (default: cluster CPUs / --worker-cpus, or its GPUs)",
        )
        group.add_argument(
            "--worker-cpus", type=float, metavar="N", help="ray: CPUs per worker, also its torch threads (default 1)"
        )
        group.add_argument(
            "--worker-gpus", type=float, metavar="N", help="ray: GPUs per worker (default 1 with --device cuda, else 0)"
        )
        group.add_argument(
            "--retries",
            type=int,
            metavar="N",
            help="ray: restarts of a lost worker, and retries of its unit (default 3)",
        )

    def check(self, config: Any) -> None:
        """Fail before any work if Ray is missing."""
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise UserError("the ray executor needs Ray: pip install 'lingspace-harness[ray]'") from exc

    def execute(self, stages: list[list[Unit]], worker: WorkerSpec) -> None:
        self.check(worker.config)
        import ray

        opts: RayOptions = worker.options or RayOptions()
        gpus = opts.worker_gpus
        if gpus is None:
            gpus = 1.0 if str(worker.config.device).startswith("cuda") else 0.0
        started = not ray.is_initialized()
        if started:
            try:
                ray.init(
                    address=opts.ray_address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UserError(
                    f"ray: cannot start or join a cluster (--ray-address {opts.ray_address}): {exc}"
                ) from exc
        try:
            resources = ray.cluster_resources()
            cpus = opts.worker_cpus
            default = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
            n = max(1, min(opts.workers or default or 1, max(map(len, stages))))
            actor = ray.remote(
                num_cpus=cpus, num_gpus=float(gpus), max_restarts=opts.retries, max_task_retries=opts.retries
            )(_RayWorker)
            spec = replace(worker, threads=max(1, int(cpus)), local=None)  # the driver's fingerprints go along
            workers: list[Any] = [actor.remote(spec) for _ in range(n)]  # each loads the model once, for all stages
            try:
                for units in stages:
                    self._stage(ray, workers, units)
                    worker.verify(units)  # a lost stage fails now, not after the next one
            finally:
                for w in workers:
                    ray.kill(w)
        finally:
            if started:
                ray.shutdown()

    def _stage(self, ray: Any, workers: list[Any], units: list[Unit]) -> None:
        """Keep every worker busy with the next unit until the stage's units are all done."""
        queue = list(units)
        running: dict[Any, tuple[Any, Unit]] = {}

        def submit(w: Any) -> None:
            if queue:
                unit = queue.pop(0)
                running[w.run.remote(unit)] = (w, unit)

        desc = f"stage {units[0].stage} units on {len(workers)} ray workers"
        with progress_bar(len(units), desc, unit="unit") as bar:  # done/total, rate, ETA
            for w in workers:
                submit(w)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                w, unit = running.pop(ready[0])
                try:
                    ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # execute() then kills the workers, and their units
                    raise UserError(f"ray: unit {unit.kind}:{unit.name} failed: {failure(exc)}") from exc
                bar.update(1)
                submit(w)


def failure(exc: Exception) -> str:
    """A failed unit's reason in one line: a worker's UserError as it said it, else the error's last line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        return str(cause)
    return str(exc).strip().splitlines()[-1]


@hookimpl
def lingspace_register_executors(register):
    register(Ray())
