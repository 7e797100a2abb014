"""Run a stage's items on dask (a local process cluster or a remote scheduler) or inline, streaming rows to the manifest.

- Scheduler choice (:func:`open_executor`): ``None``/``"local"`` -> a ``LocalCluster`` of single-threaded worker
  processes sized to the machine (CPUs, and at least ``MEMORY_PER_WORKER`` of RAM each), every listener on
  127.0.0.1 and no dashboard unless asked; ``"tcp://HOST:PORT"`` -> an existing dask scheduler;
  ``"synchronous"``/``"inline"`` (or ``workers=0``) -> in this process, no dask. The environment variable
  ``BODYDATA_SCHEDULER`` supplies the default.
- Workers run with OMP/MKL/OPENBLAS_NUM_THREADS and torch's intra-op threads limited (1 by default), so N
  workers do not oversubscribe the cores. Workers run without dask's statistical profiler, whose per-second
  call trees of every task's stack made their memory grow with the number of meshes.
- At most a window of tasks is in flight; each finished row is appended to the manifest journal (fsync) as it
  arrives, so the driver's memory does not grow with the results and a crash loses nothing. The manifest CSV is
  rewritten atomically every ``flush_seconds`` and at the end.
- ``BodydataError`` in an item -> a failed row at once; other exceptions and lost workers are retried
  ``retries`` times, then recorded as failed with the exception's one-line message.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_write_text
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED
from bodydata.pipeline.manifest import Manifest, Row
from bodydata.pipeline.stage import (
    Item,
    Stage,
    StageContext,
    StageError,
    content_digest,
    execute_item,
    one_line,
    params_digest,
    stat_digest,
)

__all__ = [
    "SCHEDULER_ENV",
    "THREAD_ENV_VARS",
    "StageSummary",
    "Executor",
    "InlineExecutor",
    "DaskExecutor",
    "LazyExecutor",
    "open_executor",
    "default_workers",
    "run_stage",
    "executor_of_this_task",
]

SCHEDULER_ENV = "BODYDATA_SCHEDULER"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
INLINE_NAMES = ("synchronous", "sync", "inline")
LOCAL_NAMES = ("", "local")
MEMORY_PER_WORKER = 2 * 1024**3  # bytes; a 12k-vertex body with its sparse factorisations fits well within it
STAGE_INFO_NAME = "stage.json"


@dataclass
class StageSummary:
    """Counts for one stage run. ``done``/``failed`` count items processed in this run; ``skipped`` were up to date."""

    stage: str
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    out_dir: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item, reason), the first few

    def line(self) -> str:
        """``"N done, K skipped, F failed"`` (the summary line the CLI prints)."""
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed"


# ---------------------------------------------------------------------------------------------------------------
# Thread limits


def limit_threads(threads: int = 1) -> None:
    """Limit BLAS/OpenMP/torch threads of this process (env for libraries not yet loaded, threadpoolctl and torch
    for loaded ones)."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _limited_task(threads: int, stage: Stage, item: Item, out_dir: str) -> dict[str, Any]:
    """The dask task: torch may have been imported by the previous task, so re-check its thread count every time."""
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return execute_item(stage, item, out_dir)


def _thread_plugin(threads: int):
    from distributed.diagnostics.plugin import WorkerPlugin

    class ThreadLimits(WorkerPlugin):
        """Runs on every worker (and every restarted one): limit its compute threads and stop dask's statistical
        profiler (a restarted local worker does not get the cluster's start-up configuration back)."""

        idempotent = True
        name = "bodydata-thread-limits"

        def __init__(self, n: int):
            self.n = n

        def setup(self, worker) -> None:
            limit_threads(self.n)
            for name in ("profile", "profile-cycle"):
                pc = worker.periodic_callbacks.pop(name, None)
                if pc is not None:
                    pc.stop()

    return ThreadLimits(threads)


# ---------------------------------------------------------------------------------------------------------------
# Executors


class Executor:
    """Runs ``fn(*args)`` for a stream of ``(tag, args)`` and yields ``(tag, result, exception)`` as each finishes."""

    kind = "abstract"
    n_workers = 1
    threads = 1
    description = ""

    def run(self, fn: Callable, jobs: Iterable[tuple[Any, tuple]], retries: int) -> Iterator[tuple[Any, Any, BaseException | None]]:
        raise NotImplementedError


class InlineExecutor(Executor):
    """In this process, one item at a time (debugging, tiny runs); retries are a plain loop."""

    kind = "inline"
    description = "inline (no dask)"
    threads = None

    def __init__(self, threads: int | None = None):
        # Inline runs share the caller's process: limit threads only when asked to.
        if threads is not None:
            self.threads = threads
            limit_threads(threads)

    def run(self, fn, jobs, retries):
        for tag, args in jobs:
            for attempt in range(retries + 1):
                try:
                    result = fn(*args)
                except Exception as exc:  # KeyboardInterrupt/SystemExit pass through
                    if attempt == retries:
                        yield tag, None, exc
                    continue
                yield tag, result, None
                break


class DaskExecutor(Executor):
    """On a dask ``Client``; keeps at most ``window`` tasks in flight and releases each as soon as it is read."""

    kind = "dask"

    def __init__(self, client, description: str, window: int | None = None, threads: int = 1):
        self.client = client
        self.threads = threads
        self.description = description
        nthreads = sum(client.nthreads().values()) or 1
        self.n_workers = max(1, len(client.nthreads()))
        self.window = window or max(32, 4 * nthreads)

    def run(self, fn, jobs, retries):
        from distributed import as_completed

        it = iter(jobs)
        tags: dict[str, Any] = {}
        # with_results: dask fetches results in the background as tasks finish (no round trip per future here)
        ac = as_completed(with_results=True, raise_errors=False)

        def submit_next() -> bool:
            try:
                tag, args = next(it)
            except StopIteration:
                return False
            fut = self.client.submit(fn, *args, key=f"bodydata-{uuid.uuid4().hex}", pure=False, retries=retries)
            tags[fut.key] = tag
            ac.add(fut)
            return True

        for _ in range(self.window):
            if not submit_next():
                break
        for fut, payload in ac:
            tag = tags.pop(fut.key)
            result, exc = None, None
            if fut.status == "finished":
                result = payload
            elif fut.status == "error" and isinstance(payload, tuple) and len(payload) == 3:
                exc = payload[1]  # (type, exception, traceback)
            elif isinstance(payload, BaseException):
                exc = RuntimeError(f"task {fut.status}: {one_line(payload)}")
            else:
                exc = RuntimeError(f"task ended with status {fut.status}")
            fut.release()
            yield tag, result, exc
            submit_next()


class LazyExecutor(Executor):
    """Opens the real executor (:func:`open_executor` with these arguments) on first use, so a run with nothing to
    do starts no cluster. Use as a context manager; ``on_open(description)`` is called when it starts."""

    def __init__(self, *args, on_open: Callable[[str], None] | None = None, **kwargs):
        self._args, self._kwargs, self._on_open = args, kwargs, on_open
        self._stack = contextlib.ExitStack()
        self._inner: Executor | None = None
        self.description = "(not started)"

    def _open(self) -> Executor:
        if self._inner is None:
            self._inner = self._stack.enter_context(open_executor(*self._args, **self._kwargs))
            self.description = self._inner.description
            self.kind, self.n_workers, self.threads = self._inner.kind, self._inner.n_workers, self._inner.threads
            if self._on_open:
                self._on_open(self.description)
        return self._inner

    def run(self, fn, jobs, retries):
        return self._open().run(fn, jobs, retries)

    def __enter__(self) -> "LazyExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


@contextlib.contextmanager
def executor_of_this_task() -> Iterator[Executor | None]:
    """Inside a task on a dask worker: an executor on the same cluster, so that a stage item can fan work out to
    every worker (the task leaves its worker's thread pool while it waits; dask's ``worker_client``). Elsewhere
    (an inline run, no dask): None."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None
        return
    threads = int(os.environ.get(THREAD_ENV_VARS[0], "1") or 1)
    with worker_client() as client:
        yield DaskExecutor(client, "the dask cluster of this run", threads=threads)


def default_workers(memory_per_worker: int = MEMORY_PER_WORKER) -> int:
    """Worker processes for a local cluster: one per CPU (cgroup-aware), no more than RAM / ``memory_per_worker``."""
    from dask.system import CPU_COUNT

    try:
        import psutil

        mem = psutil.virtual_memory().total
    except Exception:
        mem = memory_per_worker * CPU_COUNT
    return max(1, min(CPU_COUNT, mem // memory_per_worker))


def _loopback_address(address: str | None, host: str) -> str | None:
    """``":8787"`` -> ``"127.0.0.1:8787"``; an explicit host is kept (the user asked for it)."""
    if address in (None, "", "off", "none", False):
        return None
    address = str(address)
    if address.startswith(":"):
        return f"{host}{address}"
    if address.isdigit():
        return f"{host}:{address}"
    return address


@contextlib.contextmanager
def open_executor(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    threads: int | None = None,
    host: str = "127.0.0.1",
    dashboard: str | None = None,
    memory_limit: str | int | None = "auto",
    connect_timeout: str = "30s",
) -> Iterator[Executor]:
    """An executor for :func:`run_stage`; closes the cluster (and its processes) on exit.

    scheduler : None (use $BODYDATA_SCHEDULER, else "local"), "local", "synchronous"/"inline", or a dask scheduler
        address ("tcp://HOST:PORT", a scheduler file path ending in .json).
    workers : local cluster size (default :func:`default_workers`); 0 means inline.
    threads : compute threads per dask worker (BLAS/OpenMP/torch), default 1; inline runs are limited only when given.
    host : interface the local scheduler, nannies and workers listen on (loopback by default).
    dashboard : None (off) or an address for the local scheduler's dashboard (":8787" binds to ``host``).
    memory_limit : per local worker (dask's "auto" = RAM / workers); a worker above it is restarted, its task retried.
    connect_timeout : how long to try reaching an existing scheduler.
    """
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV, "")
    scheduler = scheduler.strip()
    if scheduler.lower() in INLINE_NAMES or workers == 0:
        yield InlineExecutor(threads)
        return
    threads = threads or 1

    import dask
    from distributed import Client

    if scheduler.lower() in LOCAL_NAMES:
        from distributed import LocalCluster

        n = workers or default_workers()
        env = {var: str(threads) for var in THREAD_ENV_VARS}
        dash = _loopback_address(dashboard, host)
        # With the dashboard off the scheduler still serves /health and /metrics over HTTP (default port 8787):
        # a random port on ``host`` avoids clashing with other clusters on the machine.
        scheduler_kwargs = {} if dash else {"dashboard_address": f"{host}:0"}
        config = {
            "distributed.nanny.pre-spawn-environ": {**env, "MALLOC_TRIM_THRESHOLD_": 65536},
            # One task at a time per single-threaded worker: when a worker dies, dask counts the death against
            # every task assigned to it, so a poison mesh must not take queued innocent ones down with it.
            "distributed.scheduler.worker-saturation": 1.0,
            # dask's statistical profiler samples every task's stack each 10 ms and keeps a call tree per second
            # for the last 1,000 seconds (plus per-key trees): with deep numeric stacks that was most of the
            # workers' memory growth over a 4,000-mesh run (benchmarks/bench_orchestrate.py memory)
            "distributed.worker.profile.enabled": False,
        }
        with dask.config.set(config):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host=host,
                dashboard_address=dash,
                scheduler_kwargs=scheduler_kwargs,
                memory_limit=memory_limit,
                silence_logs=logging.ERROR,
            )
        try:
            client = Client(cluster)
            try:
                client.register_plugin(_thread_plugin(threads))
                desc = f"local dask cluster, {n} worker process{'es' if n != 1 else ''} on {host}"
                if cluster.dashboard_link and dashboard:
                    desc += f", dashboard {cluster.dashboard_link}"
                yield DaskExecutor(client, desc, threads=threads)
            finally:
                client.close()
        finally:
            cluster.close()
        return

    try:
        if scheduler.endswith(".json"):
            client = Client(scheduler_file=scheduler, timeout=connect_timeout)
        else:
            client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise BodydataError(f"cannot reach the dask scheduler {scheduler}: {one_line(exc)}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=connect_timeout)
        except TimeoutError:
            raise BodydataError(f"the dask scheduler {scheduler} has no workers (waited {connect_timeout})") from None
        client.register_plugin(_thread_plugin(threads))
        yield DaskExecutor(client, f"dask scheduler {scheduler}, {len(client.nthreads())} workers", threads=threads)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------------------------
# Running a stage


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plan(stage: Stage, items: list[Item], manifest: Manifest) -> tuple[list[Item], int]:
    """Split items into (to do, number skipped). Done rows whose stat fingerprint changed are re-hashed here: same
    bytes -> skipped (the fingerprint is refreshed in the journal), different bytes -> redone."""
    todo: list[Item] = []
    skipped = 0
    for item in items:
        pdig = params_digest(stage, item)
        st = stat_digest(stage, item, pdig)
        if manifest.is_current(item.key, st):
            skipped += 1
            continue
        row = manifest.rows.get(item.key)
        if (
            row is not None
            and row.status == STATUS_DONE
            and row.input_hash
            and all((manifest.folder / o).exists() for o in row.outputs)
        ):
            try:
                same = content_digest(stage, item, pdig) == row.input_hash
            except BodydataError:
                same = False
            if same:
                row.input_stat = st
                manifest.record(row, event="restat")
                skipped += 1
                continue
        todo.append(item)
    return todo, skipped


def run_stage(
    stage: Stage,
    ctx: StageContext,
    executor: Executor | None = None,
    *,
    retries: int = 2,
    progress: bool = True,
    flush_seconds: float = 30.0,
    max_failures_listed: int = 20,
) -> StageSummary:
    """Run every item of ``stage`` that is not up to date; return the counts.

    Items are listed in the driver (``stage.items(ctx)``), compared with the manifest in ``ctx.out_dir``, and the
    rest are executed on ``executor`` (default: :func:`open_executor` with its defaults, opened and closed here).
    A failed item never stops the others. Writes ``manifest.csv``, ``manifest.journal.jsonl`` and ``stage.json``
    in ``ctx.out_dir``.
    """
    t0 = time.perf_counter()
    out_dir = Path(ctx.out_dir)
    items = list(stage.items(ctx))
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise StageError(f"stage {stage.name}: item key {dup!r} appears twice")
    summary = StageSummary(stage=stage.name, total=len(items), out_dir=str(out_dir))
    run_id = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"

    with Manifest.open(out_dir, run_id=run_id) as manifest:
        todo, summary.skipped = _plan(stage, items, manifest)
        try:
            if todo:
                with contextlib.ExitStack() as stack:
                    if executor is None:
                        executor = stack.enter_context(open_executor())
                    _execute(stage, todo, out_dir, executor, manifest, summary, retries, progress, flush_seconds,
                             keys, max_failures_listed, len(items))
        finally:
            manifest.write_csv(order=keys)  # also on Ctrl-C: the CSV then shows what the journal already holds
        if stage.finish is not None:
            stage.finish(ctx, [manifest.rows[k] for k in keys if k in manifest.rows])
        summary.seconds = time.perf_counter() - t0
        counts = manifest.counts(keys)
        info = {
            "stage": stage.name,
            "version": stage.version,
            "options": stage.options,
            "run": run_id,
            "finished_at": _now(),
            "items": len(items),
            "this_run": {"done": summary.done, "skipped": summary.skipped, "failed": summary.failed},
            "manifest": counts,
        }
        atomic_write_text(out_dir / STAGE_INFO_NAME, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return summary


def _execute(stage, todo, out_dir, executor, manifest, summary, retries, progress, flush_seconds, keys,
             max_failures_listed, total) -> None:
    from tqdm.auto import tqdm

    if isinstance(executor, LazyExecutor):
        executor._open()  # the thread limit below depends on the kind of executor
    threads = getattr(executor, "threads", 1)
    jobs = ((it, (threads, stage, it, str(out_dir))) for it in todo)
    last_flush = time.monotonic()
    bar = tqdm(total=total, initial=summary.skipped, desc=stage.name, unit="item", disable=not progress,
               dynamic_ncols=True, leave=True)
    try:
        for item, result, exc in executor.run(_limited_task, jobs, retries):
            if exc is None:
                try:
                    row = Row.from_dict(result)
                except (BodydataError, KeyError, TypeError, ValueError) as bad:
                    exc = bad
            if exc is not None:
                row = Row(item=item.key, status=STATUS_FAILED, reason=one_line(exc), finished_at=_now())
            manifest.record(row)
            if row.status == STATUS_DONE:
                summary.done += 1
            else:
                summary.failed += 1
                if len(summary.failures) < max_failures_listed:
                    summary.failures.append((row.item, row.reason))
                bar.set_postfix(failed=summary.failed, refresh=False)
            bar.update(1)
            if time.monotonic() - last_flush > flush_seconds:
                manifest.write_csv(order=keys)
                last_flush = time.monotonic()
    finally:
        bar.close()

