"""Files written the one way regbook writes them, and the one clock it reads.

Every file regbook writes is written beside its target, flushed to disk, and renamed
into place, so a crash leaves the old file or the new one, never half of either::

    from regbook.core import fs
    fs.atomic_write(path, data)            # keeps path's mode, or follows the umask
    with fs.replacing(path) as handle:     # for writers that stream (a workbook)
        book.save(handle)
    fs.utc_now()                           # "2026-12-04T18:13:39Z"; tests pin it here

Only private keys are private: they pass ``mode=0o600``. Everything else keeps the mode
the file had, or gets the one the umask gives a new file, so a workbook on a shared
drive stays readable by the governance lead and the CI account. Folders built aside
and renamed into place (bags, retrieved copies) come from ``staging_folder``, not from
a bare ``tempfile.mkdtemp``, which is private.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO


def utc_now() -> str:
    """Now, in the form every event and report carries: the clock every record of a
    time reads (tests pin it)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verifier_now() -> datetime:
    """The verifier's clock, which an event's time may not run ahead of. Not pinned with
    ``utc_now``: a test that dates events in the past still checks them against now."""
    return datetime.now(UTC)


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it is to set it
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """The mode a new file gets under the current umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """The mode a new folder gets under the current umask (0o755 under umask 022)."""
    return 0o777 & ~_umask()


def staging_folder(parent: Path, prefix: str, *, like: Path | None = None) -> Path:
    """A fresh hidden folder in ``parent`` to build something in before renaming it into
    place. ``tempfile.mkdtemp`` makes it 0700; a bag or a retrieved copy renamed from it
    must not be private, so it gets ``like``'s mode when that folder exists, else the
    umask's."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    mode = new_folder_mode()
    if like is not None:
        try:
            mode = like.stat().st_mode & 0o7777
        except OSError:
            pass
    try:
        os.chmod(folder, mode | 0o700)  # the owner must still be able to fill it
    except OSError:  # where modes are not POSIX
        pass
    return folder


def mode_for(path: Path) -> int:
    """The mode ``path`` has now, or the umask's mode for a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return new_file_mode()


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable on POSIX; Windows cannot open folders, and
    needs not."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextmanager
def replacing(
    path: Path,
    *,
    mode: int | None = None,
    before_rename: Callable[[], None] | None = None,
) -> Iterator[BinaryIO]:
    """A handle on a temporary file beside ``path``; when the block ends without an
    error, the file is flushed to disk, given ``mode`` (default: ``mode_for(path)``),
    ``before_rename`` runs, and it replaces ``path``. On any error it is removed and
    ``path`` is untouched."""
    folder = path.parent if str(path.parent) else Path(".")
    target_mode = mode_for(path) if mode is None else mode
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, target_mode)
        except OSError:  # where modes are not POSIX
            pass
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see ``replacing``)."""
    with replacing(path, mode=mode) as handle:
        handle.write(data)
