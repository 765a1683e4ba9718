"""Tar files that appear under their final name only once complete.

A tar is written to a hidden temporary file next to its target and renamed
into place by ``commit``. An exception (a full disk, an interrupt) removes
the temporary file, so no half-written tar is ever left under its final name.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Self

logger = logging.getLogger(__name__)

Opener = Callable[[Path], BinaryIO]

PARTIAL_SUFFIX = ".partial"


def open_for_write(path: Path) -> BinaryIO:
    """Open ``path`` for binary writing; the default ``Opener``."""
    return open(path, "wb")


def partial_path(path: Path) -> Path:
    """Return the temporary path a tar is written to before its rename."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def _blocks(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def member_size(name: str, size: int) -> int:
    """Return the bytes one GNU-format member of ``size`` bytes takes in a tar."""
    total = tarfile.BLOCKSIZE + _blocks(size)
    if len(name.encode()) >= tarfile.LENGTH_NAME:
        total += tarfile.BLOCKSIZE + _blocks(len(name.encode()) + 1)
    return total


class AtomicTarWriter:
    """Write members into a tar at ``path`` through a temporary file.

    Members get fixed metadata (mtime 0, mode 0644, owner 0), so the same
    content gives the same bytes. ``opener`` opens the temporary file and is
    the seam where tests put a file object that fails like a full disk.
    Use as a context manager: a clean exit commits, an exception aborts.

    Headers come from ``tarfile.TarInfo.tobuf`` and the layout is the one
    ``tarfile`` writes, but no ``TarFile`` is kept open. ``TarFile`` keeps
    every member's ``TarInfo`` in memory, so a tar of many frames would grow
    the writer's memory with each frame.
    """

    def __init__(self, path: str | Path, opener: Opener = open_for_write) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = partial_path(self.path)
        self._file = opener(self._partial)
        self._offset = 0
        self.num_members = 0
        self._done = False

    def closed_size(self, members: dict[str, int] | None = None) -> int:
        """Return the file size after adding ``members`` (name to data size) and closing.

        Counts GNU long-name records, the two zero blocks that end an archive
        and the padding of the whole file to ``tarfile.RECORDSIZE``.
        """
        total = self._offset + 2 * tarfile.BLOCKSIZE
        for name, size in (members or {}).items():
            total += member_size(name, size)
        return -(-total // tarfile.RECORDSIZE) * tarfile.RECORDSIZE

    def add(self, name: str, data: bytes) -> None:
        """Append one member named ``name`` holding ``data``."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        header = info.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")
        padding = -len(data) % tarfile.BLOCKSIZE
        self._file.write(header)
        self._file.write(data)
        self._file.write(tarfile.NUL * padding)
        self._offset += len(header) + len(data) + padding
        self.num_members += 1

    def commit(self) -> Path:
        """Finish the tar, flush it to disk and rename it to its final name.

        On failure (such as ``OSError`` with ``ENOSPC``) the temporary file
        is removed and the error is raised again.
        """
        try:
            end = self._offset + 2 * tarfile.BLOCKSIZE
            end_padding = -end % tarfile.RECORDSIZE
            self._file.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE + end_padding))
            self._file.flush()
            try:
                os.fsync(self._file.fileno())
            except (AttributeError, io.UnsupportedOperation):
                pass
            self._file.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Discard the temporary file; the final name is left untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
        except OSError as exc:
            logger.debug("ignoring %s while aborting %s", exc, self._partial)
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def remove_partials(folder: Path) -> int:
    """Delete temporary tars left by a killed process under ``folder``; return the count."""
    count = 0
    for stale in folder.rglob(f".*.tar{PARTIAL_SUFFIX}"):
        stale.unlink()
        count += 1
    return count
