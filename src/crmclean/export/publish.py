"""Atomic publishing of an output directory, with a kernel lock per output directory.

Outputs are written to a private staging directory beside OUTDIR; when everything (manifest
last) is in place the staging directory *replaces* OUTDIR in one step (Linux ``renameat2``
RENAME_EXCHANGE; elsewhere two renames with recovery). A run killed at any moment leaves
either the previous complete outputs or the new complete ones — never a mixture, never a
partial file. The lock is ``flock`` on ``.<name>.crmclean.lock`` beside OUTDIR: the kernel
releases it when the process dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crmclean.errors import InputError, LockBusyError, UsageError

MANIFEST = "manifest.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ≥ 3.15). False when the call is unavailable."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True


def check_output_dir(outdir: Path, inputs: list[Path]) -> None:
    """Refuse an OUTDIR that is a file, holds an input, or is a directory crmclean did not make."""
    outdir = outdir.absolute()
    if outdir.exists() and not outdir.is_dir():
        raise UsageError("E-PATH-NOT-DIR", "output path exists and is not a directory", location=str(outdir), hint="name a new or empty directory with -o")
    if outdir.is_symlink():
        raise UsageError("E-PATH-SYMLINK", "output directory is a symbolic link", location=str(outdir), hint="name a real directory")
    for p in inputs:
        rp = p.resolve()
        if rp == outdir.resolve() or outdir.resolve() in rp.parents:
            raise UsageError("E-PATH-IS-INPUT", "output directory contains an input file", location=str(p), hint="write the outputs somewhere else")
    if outdir.is_dir() and any(outdir.iterdir()) and not (outdir / MANIFEST).is_file():
        raise UsageError("E-PATH-NOT-OUTPUT", "directory exists, is not empty and is not a crmclean output", location=str(outdir),
                         hint="choose a new or empty directory; crmclean replaces its output directory as a whole")


def _lock_path(outdir: Path) -> Path:
    outdir = outdir.absolute()
    return outdir.parent / f".{outdir.name}.crmclean.lock"


@contextmanager
def output_lock(outdir: Path) -> Iterator[None]:
    """Exclusive, non-blocking kernel lock for one output directory (exit 75 when busy)."""
    path = _lock_path(outdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise LockBusyError("E-LOCK-BUSY", f"another crmclean run holds the output lock ({holder or 'unknown holder'})",
                                location=str(path), hint="wait for it to finish; a killed run releases the lock by itself") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)


_HELD: set[int] = set()  # descriptors of the output locks this process holds


def close_inherited_locks() -> None:
    """In a forked worker: drop the copies of the parent's lock descriptors, so the lock is
    released when the parent ends, whatever becomes of the worker."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


class Staging:
    """A private directory that becomes OUTDIR on :meth:`publish`, or vanishes on failure."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir.absolute()
        self.outdir.parent.mkdir(parents=True, exist_ok=True)
        self._cleanup_stale()
        self.path = self.outdir.parent / f".{self.outdir.name}.staging-{os.getpid()}-{time.monotonic_ns()}"
        os.mkdir(self.path, 0o700)
        self.files: dict[str, str] = {}

    def _cleanup_stale(self) -> None:
        """Remove leftovers of killed runs (we hold the lock, so none is live)."""
        prefix = f".{self.outdir.name}."
        for p in self.outdir.parent.glob(prefix + "*"):
            if p.name.startswith(prefix + "staging-") or p.name.startswith(prefix + "old-"):
                shutil.rmtree(p, ignore_errors=True)

    def write_bytes(self, name: str, data: bytes | Iterable[bytes]) -> None:
        """Write a file (private to the user), whole or piece by piece as the pieces are made."""
        target = self.path / name
        digest = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for piece in [data] if isinstance(data, bytes) else data:
                fh.write(piece)
                digest.update(piece)
            fh.flush()
            os.fsync(fh.fileno())
        self.files[name] = digest.hexdigest()

    def add_file(self, name: str) -> None:
        """Register a file written directly into the staging dir (e.g. an .xlsx)."""
        target = self.path / name
        os.chmod(target, 0o600)
        self.files[name] = hashlib.sha256(target.read_bytes()).hexdigest()

    def publish(self, manifest: dict[str, Any]) -> None:
        manifest = dict(manifest)
        manifest["files"] = dict(sorted(self.files.items()))
        self.write_bytes(MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        if self.outdir.exists():
            if not _renameat2_exchange(self.path, self.outdir):
                old = self.outdir.parent / f".{self.outdir.name}.old-{os.getpid()}"
                os.rename(self.outdir, old)
                os.rename(self.path, self.outdir)
                shutil.rmtree(old, ignore_errors=True)
                return
            shutil.rmtree(self.path, ignore_errors=True)  # the previous outputs, now here
        else:
            os.rename(self.path, self.outdir)
        pfd = os.open(self.outdir.parent, os.O_RDONLY)
        try:
            os.fsync(pfd)
        finally:
            os.close(pfd)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def verify(outdir: Path) -> None:
    """Check a published OUTDIR against its manifest (used by unmerge and tests)."""
    mpath = outdir / MANIFEST
    if not mpath.is_file():
        raise InputError("E-OUTDIR-MANIFEST", "no manifest.json: not a complete crmclean output", location=str(outdir), hint="run crmclean again")
    manifest = json.loads(mpath.read_text("utf-8"))
    for name, digest in manifest.get("files", {}).items():
        data = (outdir / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise InputError("E-OUTDIR-CHANGED", f"{name} does not match the manifest", location=str(outdir), hint="the outputs were edited; run crmclean again")
