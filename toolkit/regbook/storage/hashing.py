"""Content hashes of artefacts: ``sha256:<hex>`` for a file, ``sha256-tree:<hex>`` for a folder.

A file's hash is the SHA-256 of its bytes. A folder's hash is the SHA-256 of its
manifest, one line ``<sha256 hex>  <relative path>\\n`` per regular file, POSIX paths
sorted bytewise (DESIGN section 4), so anyone can recompute it with coreutils::

    (cd DIR && find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)

Symlinks, special files and names that this recomputation would treat differently
are refused with :class:`~regbook.core.errors.InputError`, so the equality always holds.

    >>> from pathlib import Path
    >>> digest = hash_path(Path("models/credit-risk"))   # doctest: +SKIP
    >>> str(digest)                                      # doctest: +SKIP
    'sha256-tree:3f9a1c2b7d4e...'
    >>> ContentHash.parse(str(digest)) == digest         # doctest: +SKIP
    True

Large files in a folder are hashed on worker threads (hashlib releases the GIL);
small files are hashed one at a time in the calling thread, where they are cheaper.
A progress bar goes to stderr for big jobs when stderr is a terminal.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TextIO

from regbook.core.errors import InputError

__all__ = [
    "ContentHash",
    "ProgressBar",
    "hash_file",
    "hash_path",
    "hash_tree",
    "manifest_bytes",
    "tree_manifest",
]

FILE_ALGORITHM = "sha256"
TREE_ALGORITHM = "sha256-tree"
_ALGORITHMS = (FILE_ALGORITHM, TREE_ALGORITHM)
_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
# A content hash exactly as regbook writes it (str(ContentHash)).
CONTENT_HASH_RE = re.compile(f"(?:{'|'.join(map(re.escape, _ALGORITHMS))}):[0-9a-f]{{64}}")

# 1 MiB reads measured as fast as any other size from 64 KiB to 4 MiB here; the
# buffer is reused, so a read costs no allocation and no copy.
_BUFFER_SIZE = 1 << 20
# Files at least this big go to worker threads; below it the thread hand-off costs
# more than it saves. Tests lower it to force the parallel path on small data.
_PARALLEL_MIN_BYTES = 8 << 20
# When ``progress`` is None, a bar is shown only for jobs bigger than this.
_PROGRESS_MIN_BYTES = 64 << 20

# O_NOFOLLOW closes the gap between checking a path and opening it (a symlink
# swapped in meanwhile is refused, and fstat of the descriptor must then say
# regular file); O_NONBLOCK stops a FIFO swapped in from hanging the open;
# O_CLOEXEC keeps the descriptor out of any process started meanwhile. They are
# absent on Windows, where the check alone applies. Only the open changes: the
# read loop, and so the throughput, is the same.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
# How open() with O_NOFOLLOW says the path is a symlink (ELOOP; EMLINK on FreeBSD).
_NOFOLLOW_ERRNOS = (errno.ELOOP, errno.EMLINK) if hasattr(os, "O_NOFOLLOW") else ()


@dataclass(frozen=True)
class ContentHash:
    """A content hash in its on-disk form, e.g. ``sha256:9f86d081...``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise InputError(
                f"unknown hash algorithm {self.algorithm!r}: expected one of "
                + ", ".join(_ALGORITHMS)
            )
        if not (_HEX_RE.fullmatch(self.hex) and self.hex == self.hex.lower()):
            raise InputError(
                f"bad {self.algorithm} digest {self.hex!r}: expected 64 lower-case hex digits"
            )

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> ContentHash:
        """Read ``sha256:<hex>`` or ``sha256-tree:<hex>``.

        Surrounding whitespace is ignored and upper-case hex is accepted (it is
        normalised to lower case); anything else raises InputError naming the text.
        """
        if not isinstance(text, str):
            raise InputError(f"bad content hash {text!r}: expected text")
        algorithm, sep, digest = text.strip().partition(":")
        if not sep or algorithm not in _ALGORITHMS:
            raise InputError(
                f"bad content hash {text!r}: expected 'sha256:<64 hex>' or 'sha256-tree:<64 hex>'"
            )
        if not _HEX_RE.fullmatch(digest):
            raise InputError(f"bad content hash {text!r}: the digest must be exactly 64 hex digits")
        return cls(algorithm, digest.lower())

    @property
    def short(self) -> str:
        """The first 12 hex digits, as used in composite IDs."""
        return self.hex[:12]


class ProgressBar:
    """A one-line progress bar: bytes done / total, percentage and speed.

    Thread-safe; redraws at most ten times a second with ``\\r`` and ends with a
    newline. It never writes colour codes, so NO_COLOR is respected trivially.

        with ProgressBar(total_bytes, "hashing model.bin") as bar:
            for chunk in chunks:
                bar.advance(len(chunk))
    """

    _INTERVAL = 0.1

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0
        self._closed = False
        self._draw(self._started)

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes as done."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last_draw >= self._INTERVAL:
                self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._draw(time.monotonic())
            self._write("\n")

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        elapsed = now - self._started
        rate = self.done / elapsed / 1e6 if elapsed > 0 else 0.0
        percent = 100.0 * self.done / self.total if self.total else 100.0
        text = (
            f"{self.label}  {self.done / 1e6:,.1f} / {self.total / 1e6:,.1f} MB"
            f"  {min(percent, 100.0):3.0f}%  {rate:,.0f} MB/s"
        )
        # Pad over the tail of a longer previous line.
        padding = " " * max(self._width - len(text), 0)
        self._width = len(text)
        self._write("\r" + text + padding)

    def _write(self, text: str) -> None:
        if self._stream is None:  # e.g. pythonw has no stderr
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # closed or broken stderr: progress is optional
            self._stream = None


class _NoProgress:
    """Stands in for a ProgressBar when none is shown."""

    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool | None, total: int, label: str) -> ProgressBar | _NoProgress:
    if progress is None:
        stream = sys.stderr
        try:
            interactive = stream is not None and stream.isatty()
        except (OSError, ValueError):
            interactive = False
        progress = interactive and total > _PROGRESS_MIN_BYTES
    return ProgressBar(total, label) if progress else _NoProgress()


def _os_error(path: str | Path, err: OSError) -> InputError:
    reason = err.strerror or type(err).__name__
    return InputError(f"cannot read {path}: {reason}")


def _lstat(path: Path) -> os.stat_result:
    try:
        return path.lstat()
    except FileNotFoundError:
        raise InputError(f"no such file or directory: {path}") from None
    except OSError as err:
        raise _os_error(path, err) from None


def _refuse_kind(path: str | Path, mode: int) -> InputError:
    if stat.S_ISLNK(mode):
        return InputError(f"refusing to hash a symlink: {path} (hash its target instead)")
    if stat.S_ISDIR(mode):
        return InputError(f"{path} is a directory, not a file")
    return InputError(f"refusing to hash a special file (socket, FIFO or device): {path}")


def open_regular(path: str | Path, buffering: int = -1) -> io.FileIO | io.BufferedReader[io.FileIO]:
    """An artefact file opened for reading, refused unless it is a regular file: no
    symlink is followed, whatever the path was when it was checked (see _OPEN_FLAGS),
    and the open descriptor itself must be a regular file. InputError otherwise."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        # The errno settles it where O_NOFOLLOW exists, whatever the path is by now;
        # asking the path again is for the systems without it.
        if err.errno in _NOFOLLOW_ERRNOS or _is_symlink(path):
            raise _refuse_kind(path, stat.S_IFLNK) from None
        raise _os_error(path, err) from None
    raw = io.FileIO(fd, "rb", closefd=True)
    handle = raw if buffering == 0 else io.BufferedReader(raw)
    try:
        mode = os.fstat(handle.fileno()).st_mode
    except OSError as err:
        handle.close()
        raise _os_error(path, err) from None
    if not stat.S_ISREG(mode):
        handle.close()
        raise _refuse_kind(path, mode)
    return handle


class _Cancelled(Exception):
    """A worker noticed the tree hash was abandoned (an error or Ctrl-C elsewhere)."""


def _hash_regular(
    path: str | Path,
    buffer: memoryview,
    bar: ProgressBar | _NoProgress,
    cancel: threading.Event | None = None,
) -> str:
    """SHA-256 hex of a regular file, read into ``buffer`` without copies."""
    try:
        with open_regular(path, buffering=0) as handle:
            digest = hashlib.sha256()
            readinto = handle.readinto
            update = digest.update
            advance = bar.advance
            while n := readinto(buffer):
                update(buffer[:n])
                advance(n)
                if cancel is not None and cancel.is_set():
                    raise _Cancelled(path)
    except OSError as err:
        raise _os_error(path, err) from None
    return digest.hexdigest()


def _is_symlink(path: str | Path) -> bool:
    try:
        return os.path.islink(path)
    except OSError:
        return False


def hash_file(path: Path, *, progress: bool | None = None) -> ContentHash:
    """``sha256:<hex>`` of a regular file's bytes; symlinks and special files are refused."""
    path = Path(path)
    info = _lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse_kind(path, info.st_mode)
    size = info.st_size
    buffer = memoryview(bytearray(_BUFFER_SIZE))
    bar = progress_bar(progress, size, f"hashing {path.name}")
    try:
        hex_digest = _hash_regular(path, buffer, bar)
    finally:
        bar.close()
    return ContentHash(FILE_ALGORITHM, hex_digest)


class _TreeFile(NamedTuple):
    key: bytes  # the relative path as the bytes coreutils sorts and prints
    rel: str  # POSIX relative path
    path: str  # where to open it
    size: int


def _manifest_name(root: Path, rel: str) -> bytes:
    """The manifest bytes of ``rel``, or InputError if coreutils would print it differently."""
    if "\n" in rel or "\r" in rel or "\\" in rel or rel.startswith("-"):
        _refuse_name(root, rel)
    try:
        return rel.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        where = str(root / rel)
        raise InputError(f"refusing a file name that is not valid Unicode: {where!r}") from None


def _refuse_name(root: Path, rel: str) -> None:
    where = str(root / rel)
    for char, name in (("\n", "newline"), ("\r", "carriage return"), ("\\", "backslash")):
        if char in rel:
            raise InputError(
                f"refusing a file name with a {name}: {where!r} (sha256sum escapes such "
                "names, so the coreutils recomputation of the tree hash would differ)"
            )
    raise InputError(
        f"refusing a name that starts with '-' at the top of the tree: {where} "
        "(sha256sum would read it as an option, so the coreutils recomputation "
        "of the tree hash would fail)"
    )


def _scan_tree(root: Path) -> list[_TreeFile]:
    """Every regular file under ``root``, sorted bytewise by relative path."""
    # Plain strings rather than Path objects here: joining Paths cost more than
    # hashing a small file's worth of bytes.
    files: list[_TreeFile] = []
    pending: list[tuple[str, str]] = [(os.fspath(root), "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as err:
            raise _os_error(folder, err) from None
        for entry in listing:
            rel = prefix + entry.name
            try:
                if entry.is_symlink() or _is_junction(entry):
                    raise _refuse_kind(entry.path, stat.S_IFLNK)
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel + "/"))
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                raise InputError(f"{entry.path} disappeared while the tree was read") from None
            except OSError as err:
                raise _os_error(entry.path, err) from None
            if not stat.S_ISREG(info.st_mode):
                raise _refuse_kind(entry.path, info.st_mode)
            files.append(_TreeFile(_manifest_name(root, rel), rel, entry.path, info.st_size))
    files.sort(key=lambda f: f.key)
    return files


def _is_junction(entry: os.DirEntry[str]) -> bool:
    # Windows junctions are links too (DirEntry.is_junction is Python 3.12+).
    is_junction = getattr(entry, "is_junction", None)
    return bool(is_junction and is_junction())


def _check_tree_root(path: Path) -> None:
    mode = _lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise _refuse_kind(path, mode)
    if not stat.S_ISDIR(mode):
        raise InputError(f"{path} is not a directory")


def _hash_files(files: list[_TreeFile], bar: ProgressBar | _NoProgress) -> list[str]:
    """Hex digests of ``files`` in order: large ones on threads, small ones here."""
    cpus = os.cpu_count() or 1
    large = [i for i, f in enumerate(files) if f.size >= _PARALLEL_MIN_BYTES]
    small = [i for i, f in enumerate(files) if f.size < _PARALLEL_MIN_BYTES]
    digests: list[str] = [""] * len(files)
    buffer = memoryview(bytearray(_BUFFER_SIZE))
    # One large file alone gains nothing from a thread; with small files beside it
    # the calling thread works through those meanwhile.
    if cpus < 2 or not large or (len(large) == 1 and not small):
        for i in range(len(files)):
            digests[i] = _hash_regular(files[i].path, buffer, bar)
        return digests

    # Set when the calling thread stops early, so workers do not read on for
    # gigabytes before the error or Ctrl-C reaches the user.
    cancel = threading.Event()

    def hash_large(i: int) -> str:
        return _hash_regular(files[i].path, memoryview(bytearray(_BUFFER_SIZE)), bar, cancel)

    # Biggest first, so the last file to finish is a short one.
    large.sort(key=lambda i: files[i].size, reverse=True)
    pool = ThreadPoolExecutor(max_workers=min(len(large), cpus), thread_name_prefix="regbook-hash")
    try:
        futures: list[tuple[int, Future[str]]] = [(i, pool.submit(hash_large, i)) for i in large]
        for i in small:
            digests[i] = _hash_regular(files[i].path, buffer, bar)
        for i, future in futures:
            digests[i] = future.result()
    finally:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return digests


def _manifest(path: Path, progress: bool | None) -> list[tuple[str, str]]:
    path = Path(path)
    _check_tree_root(path)
    files = _scan_tree(path)
    if not files:
        raise InputError(f"directory has no files: {path} (an artefact with no bytes)")
    bar = progress_bar(progress, sum(f.size for f in files), f"hashing {path.name or path}")
    try:
        digests = _hash_files(files, bar)
    finally:
        bar.close()
    return [(digest, f.rel) for digest, f in zip(digests, files, strict=True)]


def tree_manifest(path: Path) -> list[tuple[str, str]]:
    """``[(sha256 hex, POSIX relative path)]`` for every regular file, sorted bytewise."""
    return _manifest(path, progress=False)


def tree_files(path: Path) -> list[tuple[str, str]]:
    """``[(POSIX relative path, path to open)]`` for every regular file under ``path``,
    sorted as the manifest sorts them, refused as hashing refuses (symlinks, special
    files, names the coreutils recomputation would treat differently)."""
    path = Path(path)
    _check_tree_root(path)
    return [(f.rel, f.path) for f in _scan_tree(path)]


def manifest_bytes(entries: Iterable[tuple[str, str]]) -> bytes:
    """The manifest text ``sha256sum`` prints: ``<hex>  <relpath>\\n`` per entry."""
    return b"".join(
        f"{digest}  {rel}\n".encode("utf-8", "surrogateescape") for digest, rel in entries
    )


def hash_tree(path: Path, *, progress: bool | None = None) -> ContentHash:
    """``sha256-tree:<hex>``: the SHA-256 of the folder's manifest (DESIGN section 4)."""
    manifest = manifest_bytes(_manifest(path, progress))
    return ContentHash(TREE_ALGORITHM, hashlib.sha256(manifest).hexdigest())


def hash_path(path: Path, *, progress: bool | None = None) -> ContentHash:
    """Hash a file with :func:`hash_file` or a folder with :func:`hash_tree`."""
    path = Path(path)
    mode = _lstat(path).st_mode
    if stat.S_ISDIR(mode):
        return hash_tree(path, progress=progress)
    if stat.S_ISREG(mode):
        return hash_file(path, progress=progress)
    raise _refuse_kind(path, mode)
