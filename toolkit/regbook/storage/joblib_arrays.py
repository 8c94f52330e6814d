"""Stepping over the NumPy array bytes that ``joblib.dump`` writes inside its pickle.

joblib pickles each array as a ``joblib.numpy_pickle.NumpyArrayWrapper`` whose state
names the array's shape, dtype and alignment, and writes the array's raw bytes right
after the wrapper's ``BUILD`` opcode, in the middle of the pickle stream. No opcode
parser can step over them without knowing their length, so scanners stop there and
cannot see what the rest of the stream imports.

:func:`splice` follows the stream symbolically (a stack of plain values and
placeholders, nothing imported, nothing called), works out each wrapped array's length
from its shape and dtype, and returns the stream's opcodes with the array bytes cut
out: a stream a scanner can read to its end. Anything it cannot follow exactly is a
problem, never a guess::

    opcodes, problem = splice(handle, size)
    if not problem:
        scan_pickle_bytes(io.BytesIO(opcodes), "model.joblib")
"""

from __future__ import annotations

import math
import pickletools
import struct
from typing import IO, Any, NamedTuple

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_MARK = object()


class _Global(NamedTuple):
    module: str
    name: str


class _Made:
    """What REDUCE, NEWOBJ, INST or OBJ would make: the callable, its arguments and the
    state BUILD gives it."""

    def __init__(self, func: object, args: object) -> None:
        self.func, self.args, self.state = func, args, None


class _Opaque:
    """A value this follower does not model (bytes, floats' results, persistent IDs)."""


class Unfollowable(Exception):
    """The stream does something this follower cannot model exactly."""


_PUSH_ARG = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip
_PUSH_OPAQUE = {
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "NEXT_BUFFER", "PERSID",
}  # fmt: skip


def splice(handle: IO[bytes], size: int) -> tuple[bytes, str]:
    """The pickle opcodes of ``handle`` (from its position to its end, every stream in
    it) without the array bytes joblib wrote inline; or ``b""`` and why not."""
    segments: list[tuple[int, int]] = []
    try:
        while True:
            _one_pickle(handle, size, segments)
            if handle.tell() >= size:
                break
    except Unfollowable as err:
        return b"", f"the joblib stream cannot be followed: {err}"
    except (ValueError, EOFError, struct.error, UnicodeDecodeError, OverflowError) as err:
        return b"", f"the joblib stream does not parse to its end: {err}"
    out = bytearray()
    for begin, end in segments:
        handle.seek(begin)
        out += handle.read(end - begin)
    return bytes(out), ""


def _one_pickle(handle: IO[bytes], size: int, segments: list[tuple[int, int]]) -> None:
    """Follow one pickle to its STOP (a nested one for an object array, in turn),
    appending the byte ranges that are opcodes to ``segments``."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    begin = handle.tell()
    while True:
        resume = None
        for op, arg, _pos in pickletools.genops(handle):
            resume = _step(op.name, arg, stack, memo, handle, size, segments, begin)
            if resume is not None:
                break
        if resume is None:  # STOP
            segments.append((begin, handle.tell()))
            return
        begin = resume


def _step(
    name: str,
    arg: Any,
    stack: list[Any],
    memo: dict[int, Any],
    handle: IO[bytes],
    size: int,
    segments: list[tuple[int, int]],
    begin: int,
) -> int | None:
    """One opcode; returns where the opcodes resume when it stepped over array bytes."""
    try:
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _PUSH_OPAQUE:
            stack.append(_Opaque())
        elif name in ("PROTO", "FRAME", "STOP"):
            pass
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name in ("EMPTY_LIST", "EMPTY_SET"):
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            stack.append(_Global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise Unfollowable("STACK_GLOBAL of values that are not names")
            stack.append(_Global(module, attr))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name in ("TUPLE", "LIST", "FROZENSET"):
            items = _to_mark(stack)
            stack.append(tuple(items) if name == "TUPLE" else list(items))
        elif name == "DICT":
            items = _to_mark(stack)
            stack.append(_pairs(items))
        elif name == "APPEND":
            value = stack.pop()
            _container(stack[-1], list).append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = _to_mark(stack)
            _container(stack[-1], list).extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _container(stack[-1], dict).update(_pairs([key, value]))
        elif name == "SETITEMS":
            items = _to_mark(stack)
            _container(stack[-1], dict).update(_pairs(items))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_Made(func, args))
        elif name == "NEWOBJ":
            args, cls = stack.pop(), stack.pop()
            stack.append(_Made(cls, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = stack.pop(), stack.pop(), stack.pop()
            stack.append(_Made(cls, args))
        elif name == "INST":
            module, _, attr = arg.partition(" ")
            stack.append(_Made(_Global(module, attr), tuple(_to_mark(stack))))
        elif name == "OBJ":
            items = _to_mark(stack)
            stack.append(_Made(items[0], tuple(items[1:])))
        elif name in ("EXT1", "EXT2", "EXT4"):
            stack.append(_Global("copyreg extension", str(arg)))
        elif name == "BINPERSID":
            stack.pop()
            stack.append(_Opaque())
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            _to_mark(stack)
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "READONLY_BUFFER":
            pass
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, _Made):
                target.state = state
                if target.func == _Global(*WRAPPER):
                    return _step_over_array(state, handle, size, segments, begin)
        else:
            raise Unfollowable(f"opcode {name}")
    except (IndexError, KeyError, TypeError) as err:
        raise Unfollowable(f"{name}: {type(err).__name__} {err}") from None
    return None


def _step_over_array(
    state: Any, handle: IO[bytes], size: int, segments: list[tuple[int, int]], begin: int
) -> int | None:
    """After a wrapper's BUILD: record the opcodes so far, step over the padding and
    the array bytes, and say where the opcodes resume (None for an object array, whose
    bytes are a pickle of their own, followed in turn)."""
    import numpy

    if not isinstance(state, dict):
        raise Unfollowable("a NumpyArrayWrapper without its state")
    shape, dtype = state.get("shape"), state.get("dtype")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise Unfollowable("a NumpyArrayWrapper whose shape is not whole numbers")
    if not (
        isinstance(dtype, _Made)
        and dtype.func == _Global("numpy", "dtype")
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
    ):
        raise Unfollowable("a NumpyArrayWrapper whose dtype is not numpy.dtype(TEXT)")
    try:
        kind = numpy.dtype(dtype.args[0])
    except (TypeError, ValueError) as err:
        raise Unfollowable(f"dtype {dtype.args[0]!r}: {err}") from None
    segments.append((begin, handle.tell()))
    if kind.hasobject:
        _one_pickle(handle, size, segments)  # joblib pickles object arrays inline
        return handle.tell()
    alignment = state.get("numpy_array_alignment_bytes")
    if alignment is not None:
        if type(alignment) is not int or not 0 < alignment <= 255:
            raise Unfollowable("an alignment that is not a small whole number")
        padding = handle.read(1)
        if len(padding) != 1 or padding[0] > alignment:
            raise Unfollowable("padding longer than the alignment")
        if handle.read(padding[0]) != b"\xff" * padding[0]:
            raise Unfollowable("padding that is not joblib's")
    length = math.prod(shape) * kind.itemsize
    end = handle.tell() + length
    if end > size:
        raise Unfollowable(f"an array of {length} bytes runs past the end of the file")
    handle.seek(end)
    return end


def _to_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise Unfollowable("no MARK to pop to")


def _pairs(items: list[Any]) -> dict[Any, Any]:
    if len(items) % 2:
        raise Unfollowable("an odd number of items for a dict")
    out: dict[Any, Any] = {}
    for key, value in zip(items[::2], items[1::2], strict=True):
        try:
            out[key] = value
        except TypeError:
            out[repr(type(key))] = value  # an unhashable key: kept, not looked up
    return out


def _container(value: Any, kind: type) -> Any:
    if isinstance(value, kind):
        return value
    if isinstance(value, _Made | _Opaque):
        return kind()  # items added to an object regbook does not model: dropped
    raise Unfollowable(f"adds items to a {type(value).__name__}")
