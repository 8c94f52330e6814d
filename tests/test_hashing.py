"""Tests for regbook.storage.hashing: formats cross-checked against coreutils, refusals,
speed paths."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regbook.core.errors import InputError
from regbook.storage import hashing
from regbook.storage.hashing import (
    ContentHash,
    ProgressBar,
    hash_file,
    hash_path,
    hash_tree,
    manifest_bytes,
    tree_manifest,
)

# The recomputation DESIGN section 4 promises, verbatim.
TREE_ONE_LINER = (
    "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
)


def _have_gnu_tools() -> bool:
    if not all(shutil.which(tool) for tool in ("bash", "find", "sort", "xargs", "sha256sum")):
        return False
    try:  # BSD find (macOS) has no -printf
        version = subprocess.run(["find", "--version"], capture_output=True, check=False)
    except OSError:
        return False
    return b"GNU" in version.stdout


needs_coreutils = pytest.mark.skipif(
    not _have_gnu_tools(), reason="needs bash and GNU coreutils/findutils"
)
needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def coreutils_file(path: Path) -> str:
    out = subprocess.run(
        ["sha256sum", "--", path.name], cwd=path.parent, check=True, capture_output=True
    ).stdout
    return out.split()[0].decode("ascii")


def coreutils_tree(path: Path) -> str:
    out = subprocess.run(
        ["bash", "-c", TREE_ONE_LINER], cwd=path, check=True, capture_output=True
    ).stdout
    return out.split()[0].decode("ascii")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def artefact_tree(tmp_path: Path) -> Path:
    """A model folder with the awkward shapes real artefacts have."""
    root = tmp_path / "model"
    write(root / "weights.bin", os.urandom(3 * 1024 * 1024 + 17))  # spans several reads
    write(root / "config.json", b'{"layers": 3}\n')
    write(root / "empty.txt", b"")
    write(root / "données" / "été.bin", "unicode content é".encode())
    write(root / "with space" / "a file.txt", b"spaces in both names")
    write(root / "a" / "b" / "c" / "d" / "e" / "f" / "deep.bin", b"deep")
    write(root / "sub" / "empty-too", b"")
    # Names whose bytewise order differs from a component-wise one: '-' < '.' < '/' < '0'.
    for name in ("x/y", "x.txt", "x-y", "x0", "X", "Z", "_z"):
        write(root / name, name.encode())
    (root / "an" / "empty" / "folder").mkdir(parents=True)  # contributes nothing
    return root


# --- file hashes --------------------------------------------------------------


@needs_coreutils
@pytest.mark.parametrize(
    "size", [0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 5 * 1024 * 1024 + 3]
)
def test_file_hash_matches_sha256sum(tmp_path: Path, size: int) -> None:
    path = write(tmp_path / "artefact.bin", os.urandom(size))
    digest = hash_file(path)
    assert digest.algorithm == "sha256"
    assert digest.hex == coreutils_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert str(digest) == f"sha256:{digest.hex}"


@needs_coreutils
def test_file_hash_with_unicode_name(tmp_path: Path) -> None:
    path = write(tmp_path / "données" / "été model.bin", b"bonjour")
    assert hash_file(path).hex == coreutils_file(path)


def test_hash_file_accepts_a_str_path(tmp_path: Path) -> None:
    path = write(tmp_path / "m.bin", b"abc")
    assert hash_file(str(path)) == hash_file(path)  # type: ignore[arg-type]


# --- tree hashes --------------------------------------------------------------


@needs_coreutils
def test_tree_hash_matches_coreutils_one_liner(artefact_tree: Path) -> None:
    digest = hash_tree(artefact_tree)
    assert digest.algorithm == "sha256-tree"
    assert digest.hex == coreutils_tree(artefact_tree)
    assert str(digest) == f"sha256-tree:{digest.hex}"


@needs_coreutils
def test_manifest_is_what_sha256sum_prints(artefact_tree: Path) -> None:
    printed = subprocess.run(
        ["bash", "-c", TREE_ONE_LINER.rsplit("|", 1)[0]],
        cwd=artefact_tree,
        check=True,
        capture_output=True,
    ).stdout
    assert manifest_bytes(tree_manifest(artefact_tree)) == printed


def test_tree_manifest_sorted_bytewise_with_posix_paths(artefact_tree: Path) -> None:
    entries = tree_manifest(artefact_tree)
    paths = [rel for _, rel in entries]
    assert paths == sorted(paths, key=lambda p: p.encode("utf-8", "surrogateescape"))
    assert "données/été.bin" in paths
    assert "a/b/c/d/e/f/deep.bin" in paths
    assert paths.index("x-y") < paths.index("x.txt") < paths.index("x/y") < paths.index("x0")
    assert not any(p.startswith(("/", "./")) or "\\" in p for p in paths)
    assert dict((rel, hex_) for hex_, rel in entries)["empty.txt"] == hashlib.sha256().hexdigest()
    assert len(paths) == 14  # every regular file, and nothing for the empty folder


def test_tree_hash_is_hash_of_manifest(artefact_tree: Path) -> None:
    expected = hashlib.sha256(manifest_bytes(tree_manifest(artefact_tree))).hexdigest()
    assert hash_tree(artefact_tree).hex == expected


def test_manifest_bytes_format() -> None:
    entries = [("ab" * 32, "données/été.bin"), ("cd" * 32, "x y")]
    assert manifest_bytes(entries) == (f"{'ab' * 32}  données/été.bin\n{'cd' * 32}  x y\n".encode())
    assert manifest_bytes([]) == b""


def test_tree_hash_changes_with_content_and_names(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "a.bin", b"one")
    before = hash_tree(root)
    (root / "a.bin").write_bytes(b"two")
    changed_content = hash_tree(root)
    (root / "a.bin").rename(root / "b.bin")
    renamed = hash_tree(root)
    assert len({before, changed_content, renamed}) == 3


@needs_coreutils
@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="byte file names are a Linux thing"
)
def test_tree_with_a_non_utf8_name_matches_coreutils(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    try:
        (root / os.fsdecode(b"caf\xe9.bin")).write_bytes(b"latin-1 name")
    except (OSError, UnicodeError):
        pytest.skip("the filesystem refuses non-UTF-8 names")
    write(root / "plain.bin", b"plain")
    assert hash_tree(root).hex == coreutils_tree(root)


@needs_coreutils
def test_hash_path_dispatches(artefact_tree: Path) -> None:
    assert hash_path(artefact_tree) == hash_tree(artefact_tree)
    weights = artefact_tree / "weights.bin"
    assert hash_path(weights) == hash_file(weights)
    assert hash_path(weights).hex == coreutils_file(weights)


# --- refusals -----------------------------------------------------------------


@pytest.mark.parametrize("hasher", [hash_path, hash_file, hash_tree])
def test_missing_path_is_refused(tmp_path: Path, hasher: Callable[[Path], object]) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(InputError, match="no such file") as info:
        hasher(missing)
    assert str(missing) in str(info.value)


@needs_symlinks
@pytest.mark.parametrize("hasher", [hash_path, hash_file, hash_tree])
def test_symlink_as_the_path_is_refused(tmp_path: Path, hasher: Callable[[Path], object]) -> None:
    target = tmp_path / "real"
    write(target / "a.bin", b"a")
    write(tmp_path / "real.bin", b"a")
    for link, points_to in (
        (tmp_path / "dir-link", target),
        (tmp_path / "file-link", tmp_path / "real.bin"),
    ):
        link.symlink_to(points_to)
        with pytest.raises(InputError, match="symlink") as info:
            hasher(link)
        assert str(link) in str(info.value)


@needs_symlinks
@pytest.mark.parametrize("kind", ["file", "dir", "dangling"])
def test_symlink_inside_a_tree_is_refused(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "m"
    write(root / "real.bin", b"real")
    target = {"file": root / "real.bin", "dir": tmp_path, "dangling": tmp_path / "gone"}[kind]
    link = root / "nested" / "link"
    link.parent.mkdir()
    link.symlink_to(target)
    for call in (hash_tree, hash_path, tree_manifest):
        with pytest.raises(InputError, match="symlink") as info:
            call(root)
        assert str(link) in str(info.value)


# --- a path swapped between the check and the open -----------------------------------

needs_nofollow = pytest.mark.skipif(
    not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW: the lstat check alone applies"
)


def swap_for_symlink(path: Path) -> None:
    """What an attacker with write access to the storage does after regbook's lstat:
    replace the file by a symlink to a file with the very same bytes elsewhere, so
    only the open can tell."""
    elsewhere = path.parent.parent / f"elsewhere-{path.name}"
    elsewhere.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(elsewhere)


@needs_symlinks
@needs_nofollow
def test_file_swapped_for_a_symlink_after_the_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "m" / "weights.bin", b"weights" * 1000)
    real_lstat = hashing._lstat

    def lstat_then_swap(checked: Path) -> os.stat_result:
        info = real_lstat(checked)  # a regular file: the check passes
        swap_for_symlink(checked)
        return info

    monkeypatch.setattr(hashing, "_lstat", lstat_then_swap)
    # The symlink's target must not be asked either: errno, not the path, decides.
    monkeypatch.setattr(hashing, "_is_symlink", lambda _path: False)
    with pytest.raises(InputError, match="refusing to hash a symlink") as info:
        hash_file(path)
    assert str(path) in str(info.value)
    assert len(str(info.value).splitlines()) == 1


@needs_symlinks
@needs_nofollow
@pytest.mark.parametrize("parallel", [False, True])
def test_tree_file_swapped_for_a_symlink_after_the_scan_is_refused(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    if parallel:  # the worker threads open their files the same way
        monkeypatch.setattr(hashing.os, "cpu_count", lambda: 2)
        monkeypatch.setattr(hashing, "_PARALLEL_MIN_BYTES", 1)
    before = hash_tree(artefact_tree)
    real_scan = hashing._scan_tree
    swapped = artefact_tree / "config.json"

    def scan_then_swap(root: Path) -> list[hashing._TreeFile]:
        files = real_scan(root)  # every entry lstat-ed as a regular file
        swap_for_symlink(swapped)
        return files

    monkeypatch.setattr(hashing, "_scan_tree", scan_then_swap)
    monkeypatch.setattr(hashing, "_is_symlink", lambda _path: False)
    with pytest.raises(InputError, match="refusing to hash a symlink") as info:
        hash_tree(artefact_tree)
    assert str(swapped) in str(info.value)
    monkeypatch.setattr(hashing, "_scan_tree", real_scan)
    swapped.unlink()
    shutil.copyfile(artefact_tree.parent / "elsewhere-config.json", swapped)
    assert hash_tree(artefact_tree) == before  # the same bytes: only the link was refused


@needs_fifo
def test_file_swapped_for_a_fifo_after_the_check_is_refused_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "weights.bin", b"weights")
    real_lstat = hashing._lstat

    def lstat_then_swap(checked: Path) -> os.stat_result:
        info = real_lstat(checked)
        checked.unlink()
        os.mkfifo(checked)
        return info

    monkeypatch.setattr(hashing, "_lstat", lstat_then_swap)
    with pytest.raises(InputError, match="special file") as info:
        hash_file(path)
    assert str(path) in str(info.value)


def test_artefacts_are_opened_without_following_links_or_leaking_descriptors(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags: list[int] = []
    real_open = os.open

    def spy(path: str | Path, mode: int, *args: int) -> int:
        flags.append(mode)
        return real_open(path, mode, *args)

    monkeypatch.setattr(hashing.os, "open", spy)
    hash_tree(artefact_tree)
    hash_file(artefact_tree / "weights.bin")
    assert flags
    for wanted in ("O_NOFOLLOW", "O_CLOEXEC", "O_NONBLOCK"):
        bit = getattr(os, wanted, 0)
        assert all(mode & bit == bit for mode in flags), wanted


@needs_fifo
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for hasher in (hash_path, hash_file, hash_tree):
        with pytest.raises(InputError) as info:
            hasher(fifo)
        assert str(fifo) in str(info.value)
    with pytest.raises(InputError, match="special file"):
        hash_path(fifo)


@pytest.mark.skipif(sys.platform == "win32", reason="no device nodes to lstat on Windows")
def test_device_is_refused() -> None:
    device = Path(os.devnull)
    for hasher in (hash_path, hash_file):
        with pytest.raises(InputError, match="special file") as info:
            hasher(device)
        assert str(device) in str(info.value)


@needs_fifo
def test_fifo_inside_a_tree_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "a.bin", b"a")
    fifo = root / "sub" / "pipe"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="special file") as info:
        hash_tree(root)
    assert str(fifo) in str(info.value)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows forbids these characters in names")
@pytest.mark.parametrize(
    ("name", "why"),
    [("line\nbreak.bin", "newline"), ("back\\slash.bin", "backslash"), ("cr\r.bin", "carriage")],
)
def test_names_that_sha256sum_escapes_are_refused(tmp_path: Path, name: str, why: str) -> None:
    root = tmp_path / "m"
    write(root / "ok.bin", b"ok")
    write(root / "sub" / name, b"x")
    with pytest.raises(InputError, match=why) as info:
        hash_tree(root)
    message = str(info.value)
    assert "coreutils" in message
    assert repr(str(root / "sub" / name)) in message


@pytest.mark.skipif(sys.platform == "win32", reason="Windows forbids backslashes in names")
def test_escaped_character_in_a_folder_name_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "odd\\folder" / "a.bin", b"x")
    with pytest.raises(InputError, match="backslash"):
        hash_tree(root)


def test_top_level_name_starting_with_dash_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "-rf" / "a.bin", b"x")
    with pytest.raises(InputError, match="option") as info:
        hash_tree(root)
    assert str(root / "-rf" / "a.bin") in str(info.value)


@needs_coreutils
def test_nested_name_starting_with_dash_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "sub" / "-v.bin", b"x")
    assert hash_tree(root).hex == coreutils_tree(root)


def test_empty_tree_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    (root / "only" / "folders").mkdir(parents=True)
    with pytest.raises(InputError, match="directory has no files") as info:
        hash_tree(root)
    assert str(root) in str(info.value)


def test_file_and_directory_mixups_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    path = write(root / "a.bin", b"a")
    with pytest.raises(InputError, match="is a directory"):
        hash_file(root)
    with pytest.raises(InputError, match="not a directory"):
        hash_tree(path)


# --- ContentHash ----------------------------------------------------------------

HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_content_hash_str_parse_and_short() -> None:
    digest = ContentHash.parse(f"sha256:{HEX}")
    assert digest == ContentHash("sha256", HEX)
    assert str(digest) == f"sha256:{HEX}"
    assert digest.short == HEX[:12]
    tree = ContentHash.parse(f"sha256-tree:{HEX}")
    assert tree.algorithm == "sha256-tree" and str(tree) == f"sha256-tree:{HEX}"
    assert tree != digest


def test_parse_normalises_whitespace_and_case() -> None:
    assert ContentHash.parse(f"  sha256:{HEX.upper()}\n") == ContentHash("sha256", HEX)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        HEX,
        "sha256",
        "sha256:",
        f"md5:{HEX}",
        f"sha512:{HEX}",
        f"SHA256:{HEX}",
        f"sha-256:{HEX}",
        f"sha256 :{HEX}",
        f"sha256: {HEX}",
        f"sha256:{HEX[:-1]}",
        f"sha256:{HEX}0",
        f"sha256:{HEX[:-1]}g",
        f"sha256:{HEX} trailing",
        f"sha256:{HEX[:32]}:{HEX[32:]}",
        "sha256:" + "\u0661" * 64,  # Arabic-Indic digits are not hex
        f"sha256-tree:{HEX[:12]}",
    ],
)
def test_parse_refuses_bad_text(text: str) -> None:
    with pytest.raises(InputError) as info:
        ContentHash.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("algorithm", "hex_"),
    [("md5", HEX), ("sha256", HEX.upper()), ("sha256", HEX[:-1]), ("sha256-tree", "z" * 64)],
)
def test_constructor_refuses_bad_values(algorithm: str, hex_: str) -> None:
    with pytest.raises(InputError):
        ContentHash(algorithm, hex_)


def test_content_hash_is_frozen_and_hashable() -> None:
    digest = ContentHash("sha256", HEX)
    with pytest.raises(AttributeError):
        digest.hex = "0" * 64  # type: ignore[misc]
    assert {digest, ContentHash.parse(str(digest))} == {digest}


content_hashes = st.builds(
    ContentHash,
    st.sampled_from(["sha256", "sha256-tree"]),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
)


@given(content_hashes, st.sampled_from(["", " ", "\t", "\n", " \r\n"]), st.booleans())
def test_parse_str_round_trip(digest: ContentHash, pad: str, upper: bool) -> None:
    assert ContentHash.parse(str(digest)) == digest
    shouted = f"{digest.algorithm}:{digest.hex.upper() if upper else digest.hex}"
    assert ContentHash.parse(pad + shouted + pad) == digest
    assert digest.short == str(digest).split(":")[1][:12]


@given(st.text())
def test_parse_never_fails_any_other_way(text: str) -> None:
    try:
        digest = ContentHash.parse(text)
    except InputError:
        return
    assert str(digest) == text.strip().split(":")[0] + ":" + digest.hex


# --- parallel path ------------------------------------------------------------------


@pytest.fixture
def big_tree(tmp_path: Path) -> Path:
    root = tmp_path / "big"
    write(root / "shard-1.bin", os.urandom(20 * 1024 * 1024))
    write(root / "shard-2.bin", os.urandom(20 * 1024 * 1024 + 5))
    for i in range(40):
        write(root / "small" / f"{i:03}.bin", os.urandom(i * 997))
    write(root / "tokenizer.json", b"{}")
    return root


def spy_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Record which thread hashed each file."""
    seen: dict[str, str] = {}
    real = hashing._hash_regular

    def spy(path: str | Path, buffer: memoryview, bar: object, cancel: object = None) -> str:
        seen[Path(path).name] = threading.current_thread().name
        return real(path, buffer, bar, cancel)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_hash_regular", spy)
    return seen


def test_parallel_equals_sequential(big_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing.os, "cpu_count", lambda: 2)
    seen = spy_threads(monkeypatch)
    parallel = hash_tree(big_tree)
    main = threading.current_thread().name
    assert seen["shard-1.bin"] != main and seen["shard-2.bin"] != main
    assert seen["000.bin"] == main and seen["tokenizer.json"] == main

    seen.clear()
    monkeypatch.setattr(hashing, "_PARALLEL_MIN_BYTES", 1 << 62)
    sequential = hash_tree(big_tree)
    assert set(seen.values()) == {main}
    assert parallel == sequential
    assert parallel.hex == hashlib.sha256(manifest_bytes(tree_manifest(big_tree))).hexdigest()
    if _have_gnu_tools():
        assert parallel.hex == coreutils_tree(big_tree)


def test_forced_parallel_on_small_files(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = hash_tree(artefact_tree)
    monkeypatch.setattr(hashing.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hashing, "_PARALLEL_MIN_BYTES", 1)
    seen = spy_threads(monkeypatch)
    assert hash_tree(artefact_tree) == expected
    assert any(name != threading.current_thread().name for name in seen.values())


def test_single_cpu_stays_in_the_calling_thread(
    big_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing.os, "cpu_count", lambda: 1)
    seen = spy_threads(monkeypatch)
    hash_tree(big_tree)
    assert set(seen.values()) == {threading.current_thread().name}


def test_error_in_a_worker_thread_is_an_input_error(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hashing, "_PARALLEL_MIN_BYTES", 1024 * 1024)
    real = hashing._hash_regular

    def failing(path: str | Path, buffer: memoryview, bar: object, cancel: object = None) -> str:
        if Path(path).name == "weights.bin":
            raise InputError(f"cannot read {path}: Input/output error")
        return real(path, buffer, bar, cancel)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_hash_regular", failing)
    with pytest.raises(InputError, match="weights.bin"):
        hash_tree(artefact_tree)


def test_interrupt_stops_the_workers(big_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing.os, "cpu_count", lambda: 2)
    told_to_stop: list[bool] = []

    def interrupted(
        path: str | Path, buffer: memoryview, bar: object, cancel: threading.Event | None = None
    ) -> str:
        if Path(path).name.startswith("shard"):  # a worker: wait to be told to stop
            assert cancel is not None
            told_to_stop.append(cancel.wait(timeout=10))
            raise hashing._Cancelled(path)
        raise KeyboardInterrupt  # the calling thread, on its first small file

    monkeypatch.setattr(hashing, "_hash_regular", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hash_tree(big_tree)
    assert told_to_stop == [True, True]


def test_cancelled_read_stops_at_the_next_chunk(tmp_path: Path) -> None:
    path = write(tmp_path / "big.bin", b"x" * (3 * hashing._BUFFER_SIZE))
    cancel = threading.Event()
    cancel.set()
    bar = ProgressBar(path.stat().st_size, "t", stream=io.StringIO())
    with pytest.raises(hashing._Cancelled):
        hashing._hash_regular(path, memoryview(bytearray(hashing._BUFFER_SIZE)), bar, cancel)
    assert bar.done == hashing._BUFFER_SIZE


def test_file_vanishing_after_the_scan_is_an_input_error(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scan = hashing._scan_tree

    def scan_then_delete(root: Path) -> list[hashing._TreeFile]:
        files = real_scan(root)
        (root / "config.json").unlink()
        return files

    monkeypatch.setattr(hashing, "_scan_tree", scan_then_delete)
    with pytest.raises(InputError, match="config.json"):
        hash_tree(artefact_tree)


# --- progress -----------------------------------------------------------------------


def test_progress_true_writes_a_bar_to_stderr(
    artefact_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hash_tree(artefact_tree, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "\r" in captured.err and "100%" in captured.err and "MB/s" in captured.err
    assert captured.err.endswith("\n")
    assert "\x1b" not in captured.err

    hash_file(artefact_tree / "weights.bin", progress=True)
    assert "weights.bin" in capsys.readouterr().err


def test_progress_false_and_default_off_a_terminal_write_nothing(
    artefact_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hash_tree(artefact_tree, progress=False)
    hash_file(artefact_tree / "weights.bin", progress=False)
    hash_path(artefact_tree)  # None: capsys' stderr is not a terminal
    assert capsys.readouterr() == ("", "")


def test_progress_default_needs_a_terminal_and_a_big_job(
    artefact_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    hash_tree(artefact_tree)
    assert terminal.getvalue() == ""  # a few MiB is not worth a bar
    monkeypatch.setattr(hashing, "_PROGRESS_MIN_BYTES", 1024)
    hash_tree(artefact_tree)
    assert "100%" in terminal.getvalue()


def test_progress_bar_api() -> None:
    stream = io.StringIO()
    with ProgressBar(4_000_000, "archiving m", stream=stream) as bar:
        threads = [
            threading.Thread(target=lambda: [bar.advance(1000) for _ in range(1000)])
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    bar.close()  # a second close does nothing
    assert bar.done == 4_000_000
    text = stream.getvalue()
    assert text.startswith("\rarchiving m") and text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").rsplit("\r", 1)[1]
    assert "4.0 / 4.0 MB" in last and "100%" in last


def test_progress_bar_with_zero_total_and_no_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    with ProgressBar(0, "nothing", stream=stream):
        pass
    assert "100%" in stream.getvalue()
    monkeypatch.setattr(sys, "stderr", None)
    with ProgressBar(10, "headless") as bar:  # pythonw: no stderr at all
        bar.advance(10)
