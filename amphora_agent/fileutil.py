"""Atomic, private file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def ensure_dir(path: str | os.PathLike[str], mode: int = 0o700) -> Path:
    directory = Path(path)
    directory.mkdir(mode=mode, parents=True, exist_ok=True)
    return directory


def atomic_write(path: str | os.PathLike[str], data: bytes | Iterable[bytes],
                 mode: int = 0o600, *, sync_dir: bool = True) -> None:
    """Replace ``path`` so readers see the old or the new content, never a mix.

    ``data`` may be an iterable of chunks so request bodies can be streamed.
    """
    chunks = [bytes(data)] if isinstance(data, bytes | bytearray | memoryview) else data
    with staged(path, chunks, mode, sync_dir=sync_dir):
        pass


def remove(path: str | os.PathLike[str]) -> bool:
    """Delete a file if present; returns whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def staged(path: str | os.PathLike[str], chunks: Iterable[bytes], mode: int = 0o600,  # type: ignore[no-untyped-def]
           *, sync_dir: bool = True):
    """Write ``chunks`` to a temp file beside ``path`` and yield its path.

    If the body of the ``with`` returns, the temp file replaces ``path``
    atomically; if it raises (e.g. validation failed), the temp file is
    removed and ``path`` is untouched. ``sync_dir=False`` leaves the
    directory's fsync to a following write into the same directory.
    """
    target = Path(path)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
