"""Child processes that end with the program that started them.

A DataLoader worker outlives a program killed with SIGKILL: PyTorch's own check of its parent
runs only between batches, and a worker started by a forkserver watches the forkserver, not the
program. :func:`worker_init_fn` gives a DataLoader a ``worker_init_fn`` that starts, in each
worker, a thread watching the program's process id (a ``pidfd`` on Linux, which wakes the moment
the program ends; a 1 s poll elsewhere) and ends the worker then.

``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the *thread* that forked the worker ends,
which kills the workers of a loader created in a short-lived thread (a web request) while the
program still uses them, and it does not see a program behind a forkserver.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


def worker_init_fn() -> Callable[[int], None]:
    """A ``worker_init_fn`` for a DataLoader built in this process: its workers die with this process."""
    return functools.partial(worker_init, parent=os.getpid())


def worker_init(worker_id: int, *, parent: int) -> None:
    """Run in each worker: end it as soon as process ``parent`` (the program that made the loader) ends."""
    if not _alive(parent):
        os._exit(1)
    threading.Thread(target=_exit_when_gone, args=(parent,), name="vidrec-parent-watch", daemon=True).start()


def _exit_when_gone(pid: int) -> None:
    fd = None
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has ended
    except (AttributeError, OSError):
        pass
    if fd is not None:
        import select

        select.select([fd], [], [])
    else:
        while _alive(pid):
            time.sleep(1.0)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def map_bounded(fn: Callable[[Any], T], tasks: Iterable[Any], workers: int, record: Callable[[T], None]) -> None:
    """``record(fn(task))`` for every task, in ``workers`` processes (in this one when ``workers <= 1``).

    At most ``2 * workers`` tasks are in flight, so an interruption (Ctrl-C, a kill) leaves little work
    half done and cancels what has not started. ``fn`` must be picklable (a module-level function).
    """
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            record(fn(task))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[T]] = set()
        try:
            for task in tasks:
                pending.add(pool.submit(fn, task))
                if len(pending) >= 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        record(f.result())
            for f in pending:
                record(f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
