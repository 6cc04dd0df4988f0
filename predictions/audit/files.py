"""File handling for the audit export: an exclusive lock, the last line, durable appends and
atomic rewrites. No Django."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 64 * 1024


@contextmanager
def locked_for_append(path: str) -> Iterator[int]:
    """A descriptor on ``path`` (created if missing) held under an exclusive ``flock``.

    Every writer of the file (the beat task on any worker, ``manage.py audit_export``) takes
    this lock for its whole run, so runs never interleave. A range rebuild may have renamed a
    new file over ``path`` while this process waited for the lock on the old one: the inode is
    compared once the lock is held, and the new file opened, so no line lands in an unlinked file.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if os.fstat(descriptor).st_ino == Path(path).stat().st_ino:
                break
        except FileNotFoundError:
            pass  # renamed away while we waited: open the new one
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)
    try:
        yield descriptor
    finally:
        os.close(descriptor)  # closing releases the lock


def complete_size(descriptor: int) -> int:
    """The file's size up to and including its last newline: a crash in the middle of a write
    can leave a torn last line, which was never acknowledged and must not be read as data."""
    size = os.fstat(descriptor).st_size
    position = size
    while position > 0:
        start = max(0, position - _CHUNK)
        block = os.pread(descriptor, position - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def lines_backwards(descriptor: int, end: int) -> Iterator[bytes]:
    """The complete lines before byte ``end`` (a line boundary), last first, without newlines."""
    position = end
    carry = b""
    while position > 0:
        start = max(0, position - _CHUNK)
        block = os.pread(descriptor, position - start, start) + carry
        parts = block.split(b"\n")
        carry = parts[0]
        for part in reversed(parts[1:]):
            if part:
                yield part
        position = start
    if carry:
        yield carry


def append_durably(descriptor: int, data: bytes) -> None:
    """Append ``data`` and fsync; on any failure cut the file back to where it was, so a full
    disk or an I/O error never leaves half a batch behind."""
    start = os.fstat(descriptor).st_size
    try:
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    except OSError:
        # If even that fails, the torn tail is cut by the next run (complete_size).
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, start)
        raise


def write_atomically(path: str, chunks: Iterable[bytes]) -> None:
    """Write a whole file under a temporary name, fsync it, rename it over ``path``, fsync the
    folder: a reader sees the old file or the complete new one, never a part."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{Path(path).name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(0o640)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
