"""The security scan of an artefact: every file read to its end, none ever loaded.

A file's format is told by its bytes, never by its name. Pickle streams (raw pickles,
joblib files, the ``data.pkl`` of a PyTorch zip checkpoint, NumPy object arrays) are
disassembled by picklescan, which names every global a stream imports; regbook maps
them to severities and makes the verdict fail-closed: a file that does not parse to
its end, a format regbook does not know, or a scanner that stops with an error is
*inconclusive*, never clean. Each file is hashed from the same open descriptor the
scan reads, so the content hash the report names is the hash of the bytes scanned::

    report = scan_artefact(Path("models/credit-risk/7"))
    str(report.content_hash)    # "sha256-tree:..."
    report.counts               # {"critical": 1, "high": 0, "medium": 0, "low": 0}
    report.inconclusive         # ("weights.h5",)

docs/security-scan.md compares the candidate scanners and documents each verdict.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import os
import pickletools
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from regbook.core.errors import InputError
from regbook.storage.hashing import (
    FILE_ALGORITHM,
    TREE_ALGORITHM,
    ContentHash,
    manifest_bytes,
    open_regular,
    tree_files,
)
from regbook.storage.joblib_arrays import WRAPPER, splice

SCANNER = "picklescan"
SEVERITIES = ("critical", "high", "medium", "low")
CLEAN, FINDINGS, INCONCLUSIVE = "clean", "findings", "inconclusive"

# Formats whose loading cannot run code, and those whose loading can.
NO_CODE_FORMATS = ("safetensors", "gguf", "onnx", "numpy", "text")

_READ = 1 << 20
# Files up to this size are read into memory once, hashed and scanned from there.
_IN_MEMORY = 16 << 20
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".dat", ".data")
# A PyTorch zip checkpoint's members that hold no pickle: raw tensor storages under
# data/ and a few small records.
_TORCH_RECORDS = ("version", "byteorder", ".format_version", ".storage_alignment")
_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)
_SAFETENSORS_HEADER_MAX = 100 << 20
_NO_CODE_SUFFIXES = ("safetensors", "gguf", "onnx", "npy", "json", "txt")


@dataclass(frozen=True)
class ScanFinding:
    """One thing a file's loading would do: the rule, its severity, the global."""

    rule: str
    severity: str
    global_name: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "global": self.global_name,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class FileScan:
    """One file's format, whether loading that format can run code, its findings and,
    when the scan could not vouch for the whole file, why (``problem``)."""

    path: str
    format: str
    runs_code: bool
    findings: tuple[ScanFinding, ...] = ()
    problem: str = ""

    @property
    def verdict(self) -> str:
        if self.problem:
            return INCONCLUSIVE
        return FINDINGS if self.findings else CLEAN

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "runs_code": self.runs_code,
            "verdict": self.verdict,
            "findings": [f.to_json() for f in self.findings],
        }
        if self.problem:
            out["problem"] = self.problem
        return out


@dataclass(frozen=True)
class ScanReport:
    content_hash: ContentHash
    files: tuple[FileScan, ...]
    scanner: str = SCANNER
    scanner_version: str = field(default_factory=lambda: scanner_version())

    @property
    def counts(self) -> dict[str, int]:
        return severity_counts(f for s in self.files for f in s.findings)

    @property
    def inconclusive(self) -> tuple[str, ...]:
        return tuple(s.path for s in self.files if s.problem)

    @property
    def verdict(self) -> str:
        if self.inconclusive:
            return INCONCLUSIVE
        return FINDINGS if any(s.findings for s in self.files) else CLEAN

    @property
    def high_findings(self) -> int:
        """Critical plus high: what the security gate counts."""
        counts = self.counts
        return counts["critical"] + counts["high"]


def severity_counts(findings: Iterator[ScanFinding] | Any) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        counts[f.severity] += 1
    return counts


def scanner_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(SCANNER)
    except PackageNotFoundError:
        raise InputError(
            f"the security scan needs the {SCANNER} package: pip install {SCANNER}"
        ) from None


def scan_artefact(path: Path) -> ScanReport:
    """Hash and scan a file or every file of a folder (refused as hashing refuses
    symlinks and special files). Reads every byte; loads nothing."""
    path = Path(path)
    version = scanner_version()
    _quiet_scanner_logs()
    if stat.S_ISDIR(path.lstat().st_mode if path.exists() or path.is_symlink() else 0):
        entries = tree_files(path)
        if not entries:
            raise InputError(f"directory has no files: {path} (an artefact with no bytes)")
        scans, digests = [], []
        buffer = memoryview(bytearray(_READ))
        for rel, where in entries:
            digest, scan = _hash_and_scan(where, rel, buffer)
            digests.append((digest, rel))
            scans.append(scan)
        tree = hashlib.sha256(manifest_bytes(digests)).hexdigest()
        return ScanReport(ContentHash(TREE_ALGORITHM, tree), tuple(scans), SCANNER, version)
    digest, scan = _hash_and_scan(str(path), path.name, memoryview(bytearray(_READ)))
    return ScanReport(ContentHash(FILE_ALGORITHM, digest), (scan,), SCANNER, version)


def _hash_and_scan(path: str, label: str, buffer: memoryview) -> tuple[str, FileScan]:
    """The file's SHA-256 and its scan, from one open descriptor. Small files are read
    into memory once; large ones are streamed through ``buffer`` and then scanned."""
    with open_regular(path) as handle:
        if os.fstat(handle.fileno()).st_size <= _IN_MEMORY:
            data = handle.read()
            return hashlib.sha256(data).hexdigest(), scan_stream(io.BytesIO(data), label, len(data))
        digest = hashlib.sha256()
        size = 0
        while n := handle.readinto(buffer):
            digest.update(buffer[:n])
            size += n
        handle.seek(0)
        return digest.hexdigest(), scan_stream(handle, label, size)


def scan_stream(handle: IO[bytes], label: str, size: int) -> FileScan:
    """Scan one file's bytes (``handle`` seekable, at its start, ``size`` bytes long)."""
    head = handle.read(16)
    handle.seek(0)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _scan_zip(handle, label)
    if head.startswith(b"\x93NUMPY"):
        return _scan_npy(handle, label)
    if head.startswith(b"GGUF"):
        version = struct.unpack("<I", head[4:8])[0] if len(head) >= 8 else 0
        if 1 <= version <= 3:
            return FileScan(label, "gguf", False)
        return FileScan(label, "gguf", True, problem=f"GGUF version {version} is not known")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return FileScan(
            label,
            "hdf5",
            True,
            problem="HDF5 (Keras .h5) can hold Lambda layers of Python code; regbook does "
            "not read HDF5, so it cannot vouch for this file",
        )
    for magic, name in _COMPRESSED:
        if head.startswith(magic):
            return FileScan(
                label,
                f"compressed ({name})",
                True,
                problem=f"{name}-compressed: what it holds was not scanned",
            )
    if _is_zlib(head):
        return FileScan(
            label,
            "compressed (zlib)",
            True,
            problem="zlib-compressed: what it holds was not scanned",
        )
    safetensors = _safetensors_problem(handle, head, size)
    if safetensors is not None:
        handle.seek(0)
        if not safetensors:
            return FileScan(label, "safetensors", False)
        if not head.startswith(b"\x80"):
            return FileScan(label, "safetensors", True, problem=safetensors)
    if label.endswith(".onnx") and head[:1] == b"\x08":
        # An ONNX model is a protobuf ModelProto (field 1, ir_version, first): tensors
        # and a graph of named operators, no code.
        return FileScan(label, "onnx", False)
    if head.startswith(b"\x80") or label.lower().endswith(_PICKLE_SUFFIXES):
        return _scan_pickle_file(handle, label)
    # Protocol 0 and 1 pickles have no marker: a stream that parses to its end is one.
    if _parse_problem(handle) == "":
        handle.seek(0)
        return _scan_pickle_file(handle, label)
    handle.seek(0)
    if _is_text(handle):
        if label.lower().endswith(".py"):
            # Custom model code (trust_remote_code and the like) runs when imported.
            code = ScanFinding(
                "python-source", "medium", "", "Python source: runs when a loader imports it"
            )
            return FileScan(label, "python source", True, (code,))
        return FileScan(label, "text", False)
    return FileScan(label, "unknown", True, problem="not a format regbook can scan")


def _is_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA)


def _is_text(handle: IO[bytes]) -> bool:
    """UTF-8 text with no NUL, read to its end."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := handle.read(_READ):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _safetensors_problem(handle: IO[bytes], head: bytes, size: int) -> str | None:
    """None: not a safetensors file. "": a sound one. Else what is wrong with a file that
    starts like one (an 8-byte header length, then a JSON object)."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (length,) = struct.unpack("<Q", head[:8])
    if length > size - 8 or length > _SAFETENSORS_HEADER_MAX:
        return "claims a safetensors header longer than the file"
    handle.seek(8)
    try:
        header = json.loads(handle.read(length))
    except (ValueError, UnicodeDecodeError):
        return "its safetensors header is not JSON"
    if not isinstance(header, dict):
        return "its safetensors header is not a JSON object"
    data = size - 8 - length
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
        ):
            return f"safetensors tensor {name!r} has data offsets outside the file"
    return ""


# --- pickles ---------------------------------------------------------------------------


def _scan_pickle_file(handle: IO[bytes], label: str) -> FileScan:
    findings, problem = _scan_pickle(handle, label)
    fmt = "joblib" if any(f.global_name.startswith("joblib.") for f in findings) else "pickle"
    claimed = label.rsplit(".", 1)[-1].lower() if "." in label else ""
    if claimed in _NO_CODE_SUFFIXES:
        disguised = ScanFinding(
            "disguised-pickle",
            "high",
            "",
            f"named .{claimed}, a format that runs no code, but holds a pickle",
        )
        findings = (disguised, *findings)
    return FileScan(label, fmt, True, findings, problem)


def _scan_pickle(handle: IO[bytes], label: str) -> tuple[tuple[ScanFinding, ...], str]:
    """picklescan's globals as findings, and why the stream cannot be vouched for ("" if
    it parses to its end)."""
    from picklescan.scanner import scan_pickle_bytes

    start = handle.tell()
    result = _picklescan(scan_pickle_bytes, handle, label)
    if isinstance(result, str):
        return (), result
    globals_ = list(result.globals)
    scan_err = result.scan_err
    if scan_err and any((g.module, g.name) == WRAPPER for g in globals_):
        # joblib's inline array bytes stopped the parse: scan the opcodes without them
        # too. The findings of both readings count: the first is what pickle.load runs,
        # the second what joblib.load runs.
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        handle.seek(start)
        opcodes, problem = splice(handle, size)
        if problem:
            return _findings(globals_), problem
        spliced = _picklescan(scan_pickle_bytes, io.BytesIO(opcodes), label)
        if isinstance(spliced, str):
            return _findings(globals_), spliced
        globals_ += spliced.globals
        scan_err = spliced.scan_err
    findings = _findings(globals_)
    if scan_err:
        return (
            findings,
            "the pickle stream does not parse to its end (it is cut short or malformed)",
        )
    if not globals_:
        # picklescan calls a stream with no globals clean even when it stopped parsing.
        handle.seek(start)
        problem = _parse_problem(handle)
        if problem:
            return (), problem
    return findings, ""


def _picklescan(scan: Any, handle: IO[bytes], label: str) -> Any:
    """picklescan's result, or why it stopped."""
    try:
        return scan(handle, label)
    # A scanner that fails on hostile bytes must make the file inconclusive, whatever
    # it raises: the verdict is never "clean" by accident, and never a traceback.
    except Exception as err:  # noqa: BLE001
        return f"the scanner stopped: {type(err).__name__}: {err}"


def _findings(found: list[Any]) -> tuple[ScanFinding, ...]:
    from picklescan.scanner import SafetyLevel

    findings = []
    unique = {(g.module, g.name): g for g in found}
    for (module, attr), g in sorted(unique.items()):
        name = f"{module}.{attr}"
        if g.safety == SafetyLevel.Dangerous:
            if "unknown" in (module, attr):
                findings.append(
                    ScanFinding(
                        "unresolved-global",
                        "high",
                        name,
                        "imports a global the scanner cannot name (built on the stack)",
                    )
                )
            else:
                findings.append(
                    ScanFinding(
                        "dangerous-global", "critical", name, f"calls or reaches {name} on load"
                    )
                )
        elif g.safety == SafetyLevel.Suspicious:
            findings.append(
                ScanFinding(
                    "unlisted-global",
                    "medium",
                    name,
                    f"imports {name}, which the scanner does not know to be safe",
                )
            )
    return tuple(findings)


def _parse_problem(handle: IO[bytes]) -> str:
    """ "" if the stream is one or more whole pickles up to its last byte, else why not."""
    while True:
        try:
            for _ in pickletools.genops(handle):
                pass
        except (ValueError, EOFError, struct.error, UnicodeDecodeError, OverflowError) as err:
            return f"the pickle stream does not parse to its end: {err}"
        if not handle.read(1):
            return ""
        handle.seek(-1, io.SEEK_CUR)


# --- containers --------------------------------------------------------------------------


def _scan_npy(handle: IO[bytes], label: str) -> FileScan:
    import numpy

    fmt = numpy.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            _, _, dtype = fmt.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            _, _, dtype = fmt.read_array_header_2_0(handle)
        else:
            return FileScan(label, "numpy", True, problem=f"NumPy format {version} is not known")
    except (ValueError, OSError, SyntaxError) as err:
        return FileScan(label, "numpy", True, problem=f"its NumPy header cannot be read: {err}")
    if not dtype.hasobject:
        return FileScan(label, "numpy", False)
    findings, problem = _scan_pickle(handle, label)
    return FileScan(label, "numpy (object array)", True, findings, problem)


def _torch_data(name: str) -> bool:
    parts = name.split("/")
    return (
        (len(parts) >= 3 and parts[-2] == "data" and parts[-1].isdigit())
        or parts[-1] in _TORCH_RECORDS
        or name.endswith(".data/serialization_id")
        or name.endswith(".data/version")
    )


def _scan_zip(handle: IO[bytes], label: str) -> FileScan:
    findings: list[ScanFinding] = []
    problems: list[str] = []
    runs_code = False
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            torch = any(i.filename.endswith("data.pkl") for i in infos)
            for info in infos:
                name = info.filename
                with archive.open(info) as member:
                    head = member.read(16)
                with archive.open(info) as member:
                    where = f"{label}:{name}"
                    if name.endswith(_PICKLE_SUFFIXES) or head.startswith(b"\x80"):
                        runs_code = True
                        found, problem = _scan_pickle(member, where)
                        findings.extend(found)
                        if problem:
                            problems.append(f"{name}: {problem}")
                    elif head.startswith(b"\x93NUMPY"):
                        scan = _scan_npy(member, where)
                        runs_code = runs_code or scan.runs_code
                        findings.extend(scan.findings)
                        if scan.problem:
                            problems.append(f"{name}: {scan.problem}")
                    elif torch and _torch_data(name):
                        member.read()  # read to the end: the zip's CRC is checked
                    else:
                        nested = _member_scan(member, where, info.file_size)
                        runs_code = runs_code or nested.runs_code
                        findings.extend(nested.findings)
                        if nested.problem:
                            problems.append(f"{name}: {nested.problem}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as err:
        return FileScan(label, "zip", True, tuple(findings), f"the zip cannot be read: {err}")
    except (RuntimeError, NotImplementedError) as err:  # encrypted or unknown compression
        return FileScan(label, "zip", True, tuple(findings), f"a zip member cannot be read: {err}")
    fmt = "pytorch zip" if torch else "zip"
    return FileScan(label, fmt, runs_code, tuple(findings), "; ".join(problems))


def _member_scan(member: IO[bytes], where: str, size: int) -> FileScan:
    """A zip member that is neither a pickle nor an array, read into memory (members
    are small records and configs) and scanned as a file of its own, zips excepted."""
    data = member.read()
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return FileScan(where, "zip", True, problem="a zip inside a zip is not scanned")
    return scan_stream(io.BytesIO(data), where, len(data))


def _quiet_scanner_logs() -> None:
    """picklescan logs each finding as a warning; regbook reports them itself."""
    log = logging.getLogger("picklescan")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
