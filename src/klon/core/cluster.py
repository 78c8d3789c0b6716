"""Ray, for the work that scales out (`klon sweep`, `klon dataset --ray`): connecting to a
cluster or starting a local Ray on this machine's cores, and running independent jobs on it.

Ray is the optional `scale` extra: nothing else in klon imports it, and where it is missing
the commands that need it say how to install it in one line.
"""
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from klon.core.errors import KlonError

INSTALL = "pip install -e '.[scale]' (or scripts/setup --scale)"


def require_ray():
    """The ray module, or a KlonError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise KlonError(f"this needs Ray, which is not installed: {INSTALL}") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None = None, cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration: to the cluster at `address` ("auto": the one this
    machine belongs to; "ray://HOST:PORT": through Ray Client), else a local Ray started on
    `cpus` cores (default: all of them) and shut down, with all its processes, at the end. A
    Ray the caller has already connected is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        cpus = os.cpu_count() if cpus is None else cpus
        if cpus < 1:
            raise KlonError(f"--cpus must be at least 1, got {cpus}")
        # a local Ray's workers would run at nice 15: on a shared machine anything else busy
        # there starves them (a sweep's trials got 5 % of a core beside two busy loops)
        options = {"num_cpus": cpus, "include_dashboard": False,
                   "_system_config": {"worker_niceness": 0}}
    else:
        if cpus is not None:
            raise KlonError("--cpus sizes a local Ray: a cluster (--address) has its own")
        options = {"address": address}
    # Ray would report usage statistics over the network: klon runs where there may be none
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(**options, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise KlonError(f"cannot start {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_all(function: Callable, jobs: Sequence[tuple],
            on_result: Callable[[int, Any], None]) -> None:
    """function(*job) for every job, as Ray tasks of one CPU each on the connected Ray;
    `on_result(index, result)` gets each result in the driver as it arrives (the jobs' own
    order is not kept)."""
    ray = require_ray()
    remote = ray.remote(num_cpus=1)(function)
    pending = {remote.remote(*job): i for i, job in enumerate(jobs)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            index = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as error:  # klon's own one-line errors stay so
                if isinstance(error.cause, KlonError):
                    raise KlonError(str(error.cause)) from None
                raise
            on_result(index, result)
