"""The security scan's test corpus, written at run time and never loaded.

Every malicious file is spelt opcode by opcode with the standard library, so no test
ever calls ``pickle.loads`` on it and none depends on how a Python version happens to
pickle a function. :func:`build` writes the whole corpus into a folder and returns each
file's name with the verdict docs/security-scan.md documents for it:

    corpus = build(tmp_path)
    corpus["os_system.pkl"]      # "findings"

Tests import it from their own folder; bench/compare_scanners.py puts this folder on
its path to run the candidate libraries over the same files.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

CLEAN, FINDINGS, INCONCLUSIVE = "clean", "findings", "inconclusive"
JOBLIB_VERDICT = FINDINGS  # a medium finding: it imports NumpyArrayWrapper


def _short(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def global_call(module: str, name: str, arg: str, protocol: int = 2) -> bytes:
    """A pickle that calls ``module.name(arg)`` when loaded: GLOBAL for protocol 2,
    STACK_GLOBAL for protocol 4."""
    if protocol >= 4:
        head = b"\x80\x04" + _short(module) + b"\x94" + _short(name) + b"\x94\x93"
    else:
        head = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
    return head + _short(arg) + b"\x85R."  # TUPLE1, REDUCE, STOP


def clean_pickle() -> bytes:
    return pickle.dumps({"weights": [0.25, -1.5, 3.0], "bias": 0.1, "name": "plain"}, protocol=4)


def torch_zip(data_pkl: bytes) -> bytes:
    """A PyTorch-style checkpoint: a zip whose ``archive/data.pkl`` is the pickle."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", b"\x00" * 16)
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


def safetensors_bytes() -> bytes:
    """A genuine safetensors file: 8-byte little-endian header length, JSON header,
    tensor bytes (two float32 values)."""
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + struct.pack("<2f", 1.0, 2.0)


def npy_object(payload: bytes) -> bytes:
    """A NumPy ``.npy`` (format 1.0) of an object array: its data is a pickle."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    pad = -(10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def joblib_bytes() -> bytes:
    """What ``joblib.dump`` writes for a dict holding a NumPy array (array bytes
    inline after the wrapper), or a plain pickle where joblib or NumPy is absent."""
    try:
        import joblib
        import numpy
    except ImportError:
        return clean_pickle()
    out = io.BytesIO()
    joblib.dump({"coef": numpy.arange(64, dtype="float64"), "classes": [0, 1]}, out)
    return out.getvalue()


def files() -> dict[str, tuple[bytes, str]]:
    """Each corpus file: its bytes and its documented verdict."""
    clean = clean_pickle()
    return {
        "clean.pkl": (clean, CLEAN),
        "os_system.pkl": (global_call("os", "system", "echo owned"), FINDINGS),
        "posix_system.pkl": (global_call("posix", "system", "echo owned"), FINDINGS),
        "eval_stack_global.pkl": (
            global_call("builtins", "eval", "__import__('os').getcwd()", protocol=4),
            FINDINGS,
        ),
        "popen.pkl": (global_call("subprocess", "Popen", "id"), FINDINGS),
        "model.pt": (torch_zip(global_call("os", "system", "echo owned")), FINDINGS),
        "model.joblib": (joblib_bytes(), JOBLIB_VERDICT),
        "truncated.pkl": (clean[: len(clean) // 2], INCONCLUSIVE),
        "fake.safetensors": (global_call("os", "system", "echo owned"), FINDINGS),
        "real.safetensors": (safetensors_bytes(), CLEAN),
        "objects.npy": (npy_object(global_call("os", "system", "echo owned")), FINDINGS),
        "unknown.bin": (b"\x00\x01\x02not a model format at all", INCONCLUSIVE),
    }


def build(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    verdicts = {}
    for name, (data, verdict) in files().items():
        (folder / name).write_bytes(data)
        verdicts[name] = verdict
    return verdicts
