"""Worker processes that never outlive their run.

A run killed with SIGKILL (an OOM killer, ``kill -9``, a CI timeout) cannot clean up after
itself. Its forked workers would otherwise live on as orphans, holding memory and — through the
inherited descriptor — the output directory's lock, so every later run would exit 75. Each
worker therefore asks the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``;
elsewhere a watchdog thread notices the new parent) and closes the inherited lock descriptors
(the parent's lock stays held: a ``flock`` lives until its *last* descriptor closes).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def die_with_parent(parent: int) -> None:
    """Pool initializer (runs in the worker)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
        except (OSError, AttributeError):
            armed = False
    if not armed:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="crmclean-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    from crmclean.export.publish import close_inherited_locks

    close_inherited_locks()


def cpu_workers() -> int:
    """Processes for per-row work: ``CRMCLEAN_WORKERS`` when set, else the cores, at most 2."""
    env = os.environ.get("CRMCLEAN_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 2))


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A fork-based pool whose workers die with this process and never hold its output lock."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def lean_arrow_memory() -> None:
    """Route Arrow's allocations through the C library's malloc, unless the user chose a pool
    (``ARROW_DEFAULT_MEMORY_POOL``). Arrow's default pool, mimalloc, keeps what a stage frees:
    after loading 1M contacts it held ~280 MB more than malloc does, and normalizing them
    peaked ~300 MB higher (2,518 MB against 2,194 MB) at about the same speed. Called by the
    command line (and the benchmark), not on import: a library must not change its host's pool.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


@functools.cache
def _libc(name: str) -> Any:
    """A function of glibc (``malloc_trim``, ``mallopt``), or None where the C library has none."""
    import ctypes
    import ctypes.util

    lib = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(lib) if lib else None
        return getattr(libc, name) if libc is not None and hasattr(libc, name) else None  # glibc only
    except OSError:
        return None


M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def one_malloc_arena() -> None:
    """Have every thread allocate from glibc's main arena, unless the user set
    ``MALLOC_ARENA_MAX``. A thread otherwise gets an arena of its own, which keeps what the
    thread freed: coding the features' column groups on two threads left ~65 MB more resident
    at a million records after ``malloc_trim`` (and ~200 MB more before it); with one arena, as
    little as on one thread. It took 12.7–14.2 s against 11.8 s with an arena per thread and
    14.3–15.5 s on one thread (a noisy machine), and whole dedupe runs showed no difference
    (130.5 and 134.0 s against 122.9 and 137.4 s). Called by the
    command line (and the benchmark), not on import: a library must not change its host's
    allocator. A no-op where the C library has no ``mallopt``."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 1)


def lean_memory() -> None:
    """The command line's memory settings: Arrow on malloc, one malloc arena."""
    lean_arrow_memory()
    one_malloc_arena()


def release_memory() -> None:
    """Hand memory a stage has freed back to the operating system.

    glibc keeps freed heap pages for reuse: after deduplicating 1M contacts the process held
    ~2.7 GB it had already freed (6,083 MB resident, 3,337 MB after ``malloc_trim``), which the
    next stage then counts on top of its own. Arrow's pool is asked to do the same. A no-op where
    the C library has no ``malloc_trim`` (macOS, musl).
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)

