"""Deflate streams that a later write can splice instead of compressing them again.

Appending a row to a 60 MB sheet changes two small stretches of its XML: the
``<dimension>`` size hint near the top and the end after the last row. Compressing all
of it again costs a quarter of a second each time. So regbook flushes the compressor in
full where those stretches meet the rows (``zlib.Z_FULL_FLUSH``: every block ends there,
on a byte, and nothing after refers back past it), and records the points in a zip
extra field of its own. A later write checks that the stretch of rows between the points
decodes on its own, copies its compressed bytes where the new XML holds the same bytes,
and compresses only the rest::

    plain, pieces = inflate(data, read_cuts(info.extra), info.file_size)
    data, cuts = deflate(new, level, reusable(old, new, pieces))
    extra = cuts_field(cuts)

Other programs ignore an extra field they do not know; one that rewrites the package
drops it, and the next write compresses the whole part again.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

# The extra field's header ID ("rb"): pairs of little-endian (offset in the part, offset
# in the compressed stream) at which the stream was flushed in full, rising.
CUTS_ID = 0x6272
# A final deflate block holding nothing: what a stretch that ends at a block boundary
# can be followed by to end a stream.
_EMPTY_FINAL_BLOCK = b"\x03\x00"
# How a full flush ends: an empty stored block, whose length fields stand on whole bytes.
_FULL_FLUSH_MARK = b"\x00\x00\xff\xff"
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\b[^>]*>")
_SHEET_DATA_END = re.compile(rb"</(?:\w+:)?sheetData>")

Cut = tuple[int, int]


@dataclass(frozen=True)
class Piece:
    """A stretch of a part, ``start`` to ``end``, whose compressed bytes decode on their
    own and end where a block ends (so more blocks may follow them)."""

    start: int
    end: int
    data: bytes


def read_cuts(extra: bytes) -> list[Cut]:
    """The cuts a zip entry's extra field records (none: []); never trusted: ``inflate``
    checks each stretch."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + size]
        if kind == CUTS_ID and size % 8 == 0 and len(body) == size:
            return [struct.unpack_from("<II", body, i) for i in range(0, size, 8)]
        at += 4 + size
    return []


def cuts_field(cuts: list[Cut]) -> bytes:
    """The extra field that records ``cuts`` (empty for none)."""
    if not cuts:
        return b""
    body = b"".join(struct.pack("<II", plain, packed) for plain, packed in cuts)
    return struct.pack("<HH", CUTS_ID, len(body)) + body


def inflate(data: bytes, cuts: list[Cut], size: int) -> tuple[bytes, list[Piece]] | None:
    """The ``size`` bytes a raw deflate stream holds, inflated stretch by stretch at
    ``cuts``, with the stretches that may be copied into another stream; None unless
    every stretch decodes on its own (a fresh inflater, nothing referring back past its
    start), all but the last end where a block ends, and the last ends the stream."""
    bounds = [(0, 0), *cuts, (size, len(data))]
    plain: list[bytes] = []
    pieces: list[Piece] = []
    for (start, begin), (end, stop) in zip(bounds, bounds[1:], strict=False):
        if not (start < end and begin < stop <= len(data)):
            return None
        last = stop == len(data)
        chunk = data[begin:stop]
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(
                chunk if last else chunk + _EMPTY_FINAL_BLOCK, end - start + 1
            )
        except zlib.error:
            return None
        if len(out) != end - start or not inflater.eof or inflater.unused_data:
            return None
        if not last and not chunk.endswith(_FULL_FLUSH_MARK):
            return None
        plain.append(out)
        if not last:
            pieces.append(Piece(start, end, chunk))
    return b"".join(plain), pieces


def reusable(old: bytes, new: bytes, pieces: list[Piece]) -> tuple[int, Piece] | None:
    """Where in ``new`` the rows of ``old`` stand unchanged, as the piece that holds
    them (the one from just after the size hint), or None."""
    old_start, new_start = rows_start(old), rows_start(new)
    for piece in pieces:
        if piece.start == old_start and new.startswith(
            memoryview(old)[piece.start : piece.end], new_start
        ):
            return new_start, piece
    return None


def deflate(
    data: bytes, level: int, reuse: tuple[int, Piece] | None = None
) -> tuple[bytes, list[Cut]]:
    """A raw deflate stream of ``data``, flushed in full where its rows start (after the
    size hint) and where they end (``</sheetData>``), and those cuts. With ``reuse``
    (``reusable``), that piece's compressed bytes stand for the bytes it holds."""
    view = memoryview(data)
    ends = rows_end(data)
    out: list[bytes] = []
    cuts: list[Cut] = []
    written = 0

    def emit(chunk: bytes) -> None:
        nonlocal written
        out.append(chunk)
        written += len(chunk)

    def cut(at: int) -> None:
        if 0 < at < len(data) and (not cuts or cuts[-1][0] < at):
            cuts.append((at, written))

    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    done = 0
    if reuse is not None:
        at, piece = reuse
        after = at + piece.end - piece.start
        if after <= ends:
            if at:
                emit(compressor.compress(view[:at]) + compressor.flush(zlib.Z_FULL_FLUSH))
                cut(at)
            emit(piece.data)
            cut(after)
            compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
            done = after
    for point in (rows_start(data), ends):
        if done < point < len(data):
            emit(compressor.compress(view[done:point]) + compressor.flush(zlib.Z_FULL_FLUSH))
            cut(point)
            done = point
    emit(compressor.compress(view[done:]) + compressor.flush())
    return b"".join(out), cuts


def rows_start(data: bytes) -> int:
    """Where what follows the ``<dimension>`` size hint starts (0 without one): the hint
    stands before the rows, so only the head of the part is searched."""
    head = data.find(b"sheetData")
    match = _DIMENSION.search(data, 0, head if head >= 0 else min(len(data), 4096))
    return match.end() if match else 0


def rows_end(data: bytes) -> int:
    """Where ``</sheetData>`` starts, searched from the end (the end of the part without
    one)."""
    at = data.rfind(b"sheetData>")
    while at > 0:
        match = _SHEET_DATA_END.match(data, data.rfind(b"<", 0, at))
        if match is not None and match.end() == at + len(b"sheetData>"):
            return match.start()
        at = data.rfind(b"sheetData>", 0, at)
    return len(data)
