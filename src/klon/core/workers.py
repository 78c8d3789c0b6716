"""Jobs run in worker processes, one per core, with their progress and results sent back to
the parent as events. The compiled kernels hold the GIL, so threads would take turns; forked
workers also inherit kernels the parent has already compiled or loaded.

A worker runs `task(index, report)` for each job index it is given: `report(units)` sends the
units done so far, the return value is the job's result, a KlonError its one-line failure. The
parent gets ("progress", index, units), ("done", index, result) and ("failed", index, message)
events. On Ctrl-C or SIGTERM in the parent the workers are terminated (SIGTERM: each removes
its temporary file on the way out), waited for, and killed if they do not go within a few
seconds; `cleanup()` then runs in the parent for what a killed worker could not remove.
"""
import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from klon.core.errors import KlonError
from klon.core.files import TERMINATED

STOP_WAIT = 5.0  # seconds a terminated worker gets to remove its temporary file


def can_fork() -> bool:
    """Workers are forked (they share the parent's jobs and kernels without pickling them);
    where the system cannot fork, callers run their jobs one by one instead."""
    return "fork" in multiprocessing.get_all_start_methods()


def _worker(task, jobs, events) -> None:
    def report(units):
        events.put(("progress", index, units))

    try:
        while (index := jobs.get()) is not None:
            events.put(("start", index, os.getpid()))
            try:
                events.put(("done", index, task(index, report)))
            except KlonError as error:
                events.put(("failed", index, str(error)))
            except Exception as error:  # a bug: its traceback, and the other jobs go on
                traceback.print_exc()
                events.put(("failed", index, f"{type(error).__name__}: {error}"))
    except KeyboardInterrupt:
        sys.exit(130)


def _raise_interrupt(signum, frame):
    raise SystemExit(TERMINATED)


def run_jobs(task: Callable[[int, Callable[[int], None]], Any], count: int, workers: int,
             on_event: Callable[[tuple], None], cleanup: Callable[[], None] | None = None) -> None:
    """Run jobs 0..count-1 in `workers` processes; every event goes to `on_event` in the
    parent, in the order it arrives. A worker that dies mid-job fails that job."""
    context = multiprocessing.get_context("fork")
    jobs, events = context.Queue(), context.Queue()
    processes = [context.Process(target=_worker, args=(task, jobs, events), daemon=True)
                 for _ in range(max(1, min(workers, count)))]
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for process in processes:
            process.start()
        for index in range(count):
            jobs.put(index)
        for _ in processes:
            jobs.put(None)
        running, finished = {}, set()  # pid -> job index; jobs done or failed
        while len(finished) < count:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                for process in processes:  # killed by the OOM killer, say
                    if not process.is_alive() and process.pid in running:
                        index = running.pop(process.pid)
                        finished.add(index)
                        on_event(("failed", index, f"the worker processing it died (exit "
                                                   f"status {process.exitcode})"))
                if not any(process.is_alive() for process in processes) and events.empty():
                    break
                continue
            kind, index, value = event
            if kind == "start":
                running[value] = index
                continue
            if kind in ("done", "failed"):
                running = {pid: i for pid, i in running.items() if i != index}
                finished.add(index)
            on_event(event)
        for index in sorted(set(range(count)) - finished):
            on_event(("failed", index, "not processed: every worker had stopped"))
        for process in processes:
            process.join()
    finally:
        _stop(processes)
        if cleanup is not None:
            cleanup()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _stop(processes) -> None:
    """Terminate the workers still running, give them STOP_WAIT seconds, then kill them."""
    import time

    for process in processes:
        if process.is_alive():
            with contextlib.suppress(OSError):
                process.terminate()
    deadline = time.monotonic() + STOP_WAIT
    for process in processes:
        if process.pid is not None:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
