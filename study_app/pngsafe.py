"""Strip a PNG to its pixel-carrying chunks, so no text chunk can leak a defense to participants."""
from __future__ import annotations

import hashlib
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Critical chunks plus the ones that change how pixels look; tEXt/zTXt/iTXt/tIME etc. are dropped.
_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"sRGB", b"cHRM", b"iCCP", b"sBIT"}


class NotAPNG(ValueError):
    pass


def strip_png(data: bytes) -> bytes:
    if not data.startswith(SIGNATURE):
        raise NotAPNG("not a PNG file")
    out = [SIGNATURE]
    pos = len(SIGNATURE)
    seen_end = False
    while pos < len(data):
        if pos + 8 > len(data):
            raise NotAPNG("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise NotAPNG("truncated PNG chunk")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise NotAPNG(f"bad CRC in {ctype!r} chunk")
        if ctype in _KEEP:
            out.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            seen_end = True
            break
    if not seen_end:
        raise NotAPNG("PNG has no IEND chunk")
    return b"".join(out)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk."""
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
