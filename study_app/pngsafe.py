"""Strip a PNG to its pixel-carrying chunks, so no text chunk can leak a defense to participants, and
check its header: grayscale and colour stimuli (CIFAR-10, SVHN) alike, nothing a browser might draw
differently from what was verified (a header of unknown type, bit depth or interlace method)."""
from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Critical chunks plus the ones that change how pixels look; tEXt/zTXt/iTXt/tIME etc. are dropped.
_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"sRGB", b"cHRM", b"iCCP", b"sBIT"}


class NotAPNG(ValueError):
    pass


# IHDR colour type -> (name, allowed bit depths), PNG spec 11.2.2.
COLOR_TYPES = {0: ("grayscale", (1, 2, 4, 8, 16)), 2: ("RGB", (8, 16)), 3: ("palette", (1, 2, 4, 8)),
               4: ("grayscale+alpha", (8, 16)), 6: ("RGBA", (8, 16))}
MAX_SIDE = 4096  # stimuli are small; a huge header is a malformed or hostile file


def check_header(ihdr: bytes) -> None:
    """The 13-byte IHDR body: a known colour type with a bit depth it allows, a sane size, the only
    compression/filter methods (0) and interlace none or Adam7."""
    if len(ihdr) != 13:
        raise NotAPNG(f"IHDR chunk of {len(ihdr)} bytes (must be 13)")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", ihdr)
    if color not in COLOR_TYPES:
        raise NotAPNG(f"unknown PNG colour type {color}")
    name, depths = COLOR_TYPES[color]
    if depth not in depths:
        raise NotAPNG(f"bit depth {depth} is not allowed for {name} PNGs")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise NotAPNG(f"image size {width}x{height} outside 1..{MAX_SIDE}")
    if compression or filtering or interlace not in (0, 1):
        raise NotAPNG("unknown PNG compression, filter or interlace method")


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
        if (ctype == b"IHDR") != (len(out) == 1):
            raise NotAPNG("IHDR must be the first chunk, and only the first")
        if ctype == b"IHDR":
            check_header(body)
        if ctype in _KEEP:
            out.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            seen_end = True
            break
    if not seen_end:
        raise NotAPNG("PNG has no IEND chunk")
    return b"".join(out)
